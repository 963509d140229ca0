#!/usr/bin/env node
// grid example with several outputs per task, in subfolders.
//
// For every input file <name> of this task it writes:
//   upper/<name>        the text in upper case
//   stats/<name>.json   { lines, words, bytes, longestLine }
// `grid results <job-id> --out DIR` puts them in DIR/<task index>/upper/<name> and
// DIR/<task index>/stats/<name>.json.
//
// Submit it over the wordcount texts, three inputs per task:
//   grid submit examples/textstats/job.js --inputs examples/wordcount/data/*.txt --chunk-size 3 --wait
'use strict';
const fs = require('node:fs');
const path = require('node:path');

fs.mkdirSync('upper', { recursive: true });
fs.mkdirSync('stats', { recursive: true });
for (const file of process.argv.slice(2)) {
  const name = path.basename(file);
  const text = fs.readFileSync(file, 'utf8');
  fs.writeFileSync(path.join('upper', name), text.toUpperCase());
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const stats = {
    lines: lines.length,
    words: (text.match(/\S+/g) || []).length,
    bytes: Buffer.byteLength(text),
    longestLine: Math.max(0, ...lines.map((l) => l.length)),
  };
  fs.writeFileSync(path.join('stats', `${name}.json`), JSON.stringify(stats) + '\n');
  console.log(`${name}: ${JSON.stringify(stats)}`);
}
