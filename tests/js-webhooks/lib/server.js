// The real converger binary (tests/js-support) with the REST calls this suite needs.
import { ADMIN_TOKEN, launch } from "../../js-support/converger.js";

export async function startServer() {
  // The receiver listens on loopback, which deliveries may reach only when allowed.
  const server = await launch(["--delivery-allow-private"]);
  /** `call`, but throws unless the answer has the expected status; returns the JSON. */
  const expect = (status, method, path, bearer, body) => server.ok(method, path, bearer, body, status);
  return {
    call: server.call,
    expect,
    /** A new tenant's API key, through the admin API. */
    async tenant(name) {
      return (await expect(201, "POST", "/admin/api/tenants", ADMIN_TOKEN, { name })).api_key;
    },
    stop: server.stop,
  };
}
