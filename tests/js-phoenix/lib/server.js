// The real converger binary (tests/js-support) with the REST calls this suite needs.
import { ADMIN_TOKEN, launch } from "../../js-support/converger.js";

export async function startServer() {
  const server = await launch();
  const call = server.call;
  return {
    socketUrl: `ws://${server.http}/socket`,
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
