// The real converger binary (tests/js-support) with the REST calls the SDK's
// tests need.
import { ADMIN_TOKEN, launch } from "../../../../tests/js-support/converger.js";

/**
 * With `tls`, both ports speak TLS with a certificate for localhost from a
 * throwaway CA (`caPem`). `args` go to the binary (e.g. `--delivery-allow-private`).
 */
export async function startServer({ tls = false, args = [] } = {}) {
  const server = await launch(args, { tls });
  const { call, ok } = server;
  const colon = server.binary.lastIndexOf(":");
  const httpPort = server.http.slice(server.http.lastIndexOf(":") + 1);

  return {
    /** The binary listener, as a connect() target (without its `tls` option). */
    tcp: { host: tls ? "localhost" : server.binary.slice(0, colon), port: Number(server.binary.slice(colon + 1)) },
    /** `/socket/binary`, as a connect() target's url. */
    wsUrl: tls ? `wss://localhost:${httpPort}/socket/binary` : `ws://${server.http}/socket/binary`,
    /** With tls: the CA certificate clients trust (PEM). */
    caPem: server.caPem,
    call,
    /**
     * A tenant with a channel (with `config` when given) and a conversation:
     * { apiKey, tenantId, channelId, conversationId }.
     */
    async world(name, config) {
      const t = await ok("POST", "/admin/api/tenants", ADMIN_TOKEN, { name });
      const apiKey = t.api_key;
      const ch = await ok("POST", "/api/v1/channels", apiKey, { name: `${name}-ch`, type: "websocket", ...(config ? { config } : {}) });
      const conv = await ok("POST", "/api/v1/conversations", apiKey, { channel_id: ch.id });
      return { apiKey, tenantId: t.tenant.id, channelId: ch.id, conversationId: conv.id };
    },
    /** Another conversation of the world's channel. */
    async conversation(world) {
      return (await ok("POST", "/api/v1/conversations", world.apiKey, { channel_id: world.channelId })).id;
    },
    async closeConversation(world, conversationId) {
      await ok("POST", `/api/v1/conversations/${conversationId}/close`, world.apiKey);
    },
    /** Ends `sender`'s (everyone's without it) following of the conversation, telling them `reason`. */
    async disconnect(world, reason, sender = undefined, conversationId = world.conversationId) {
      return ok("POST", `/api/v1/conversations/${conversationId}/disconnect`, world.apiKey, { reason, ...(sender ? { sender } : {}) });
    },
    async token(world, sender, conversationId = world.conversationId) {
      return (await ok("POST", "/api/v1/tokens", world.apiKey, { conversation_id: conversationId, sender })).token;
    },
    async addMember(world, sender, conversationId = world.conversationId) {
      return ok("POST", `/api/v1/conversations/${conversationId}/members`, world.apiKey, { sender });
    },
    async member(world, sender, conversationId = world.conversationId) {
      return ok("GET", `/api/v1/conversations/${conversationId}/members/${encodeURIComponent(sender)}`, world.apiKey);
    },
    /** A new HS256 signing key of the world's tenant: { kid, secret, … }. */
    async signingKey(world) {
      return ok("POST", "/api/v1/signing-keys", world.apiKey);
    },
    async revokeSigningKey(world, kid) {
      const r = await call("DELETE", `/api/v1/signing-keys/${kid}`, world.apiKey);
      if (r.status !== 204) throw new Error(`revoke ${kid}: ${r.status}`);
    },
    async refresh(token) {
      return (await ok("POST", "/api/v1/tokens/refresh", token)).token;
    },
    async post(world, text, sender = "rest", conversationId = world.conversationId) {
      return ok("POST", `/api/v1/conversations/${conversationId}/activities`, world.apiKey, { sender, text });
    },
    stop: server.stop,
  };
}
