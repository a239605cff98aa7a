// The real converger binary (tests/js-support) with the REST calls this suite needs.
import { ADMIN_TOKEN, launch } from "../../js-support/converger.js";

/** With `tls`, the server speaks HTTPS/wss with a certificate for localhost from a throwaway CA (`caPem`). */
export async function startServer({ tls = false } = {}) {
  const server = await launch([], { tls });
  const call = server.call;
  const port = server.http.slice(server.http.lastIndexOf(":") + 1);
  return {
    socketUrl: tls ? `wss://localhost:${port}/socket` : `ws://${server.http}/socket`,
    /** With tls: the CA certificate clients trust (PEM). */
    caPem: server.caPem,
    call,
    /** A tenant with a channel and a conversation: { apiKey, conversationId }. */
    async world(name) {
      const t = await call("POST", "/admin/api/tenants", ADMIN_TOKEN, { name });
      const apiKey = t.json.api_key;
      const ch = await call("POST", "/api/v1/channels", apiKey, { name: `${name}-ws`, type: "websocket" });
      const conv = await call("POST", "/api/v1/conversations", apiKey, { channel_id: ch.json.id });
      return { apiKey, conversationId: conv.json.id };
    },
    async token(world, sender) {
      const r = await call("POST", "/api/v1/tokens", world.apiKey, { conversation_id: world.conversationId, sender });
      return r.json.token;
    },
    async post(world, text, sender = "rest") {
      const r = await call("POST", `/api/v1/conversations/${world.conversationId}/activities`, world.apiKey, { sender, text });
      if (r.status !== 201) throw new Error(`REST write answered ${r.status}`);
      return r.json;
    },
    stop: server.stop,
  };
}
