// The SDK's error catalogue is docs/protocol.md's table, name for name and
// number for number (the Rust crate checks the same table against its enum).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

import { ConvergerError, ERROR_CATALOGUE, ErrorCode, errorName } from "../src/errors.js";

test("the catalogue matches docs/protocol.md", () => {
  const doc = readFileSync(resolve(import.meta.dirname, "..", "..", "..", "docs", "protocol.md"), "utf8");
  const table = doc.split("<!-- error-codes:start -->")[1].split("<!-- error-codes:end -->")[0];
  const rows = table.trim().split("\n").slice(2).map((line) => {
    const [code, name, http] = line.split("|").slice(1, 4).map((c) => c.trim());
    return { code: Number(code), name: name.replaceAll("`", ""), http: http === "—" ? null : Number(http) };
  });
  assert.deepEqual(ERROR_CATALOGUE.map((e) => ({ ...e })), rows);
});

test("errors carry number, name and group; unknown numbers are kept", () => {
  assert.equal(ErrorCode.not_found, 4001);
  assert.equal(errorName(2001), "unauthorized");
  const e = new ConvergerError(9999, "from a newer server", { requestId: 9 });
  assert.equal(e.codeName, null);
  assert.equal(e.group, 9);
  assert.ok(new ConvergerError(5001, "busy").retryable);
  assert.ok(new ConvergerError(5007, "full").retryable && new ConvergerError(5007, "full").is("storage_full"));
  assert.ok(new ConvergerError(4003, "closed").is("conversation_closed"));
});
