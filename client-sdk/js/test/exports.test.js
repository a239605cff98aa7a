// index.d.ts and codec.d.ts declare exactly what index.js exports (the types
// themselves are compiled against test/types-check.ts by `tsc` in npm test).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

import * as sdk from "../index.js";
import * as codec from "../src/codec.js";

const declared = (file) => [...readFileSync(resolve(import.meta.dirname, "..", file), "utf8")
  .matchAll(/^export declare (?:const|function|class) (\w+)/gm)].map((m) => m[1]);

test("every declared value is exported, and every export is declared", () => {
  const names = [...declared("index.d.ts"), ...declared("codec.d.ts")].sort();
  assert.deepEqual(names, Object.keys(sdk).sort());
});

test("the codec subpath declares exactly src/codec.js", () => {
  assert.deepEqual(declared("codec.d.ts").sort(), Object.keys(codec).sort());
});
