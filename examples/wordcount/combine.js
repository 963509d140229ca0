#!/usr/bin/env node
// Combines the outputs of a wordcount job into one table.
//
//   grid results <job-id> --out results/
//   node examples/wordcount/combine.js results/ [top N]
//
// Sums every results/<task>/counts.json and prints the N most frequent words (default 20)
// as "count word" lines; with N = all, prints every word as JSON instead.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const dir = process.argv[2];
const top = process.argv[3] || '20';
if (!dir) {
  console.error('usage: node combine.js RESULTS_DIR [N|all]');
  process.exit(1);
}
const total = {};
let tasks = 0;
for (const task of fs.readdirSync(dir)) {
  const file = path.join(dir, task, 'counts.json');
  if (!fs.existsSync(file)) continue;
  tasks++;
  for (const [w, n] of Object.entries(JSON.parse(fs.readFileSync(file, 'utf8')))) total[w] = (total[w] || 0) + n;
}
if (tasks === 0) {
  console.error(`no */counts.json under ${dir}; did \`grid results <job-id> --out ${dir}\` run?`);
  process.exit(1);
}
if (top === 'all') {
  const sorted = {};
  for (const k of Object.keys(total).sort()) sorted[k] = total[k];
  process.stdout.write(JSON.stringify(sorted, null, 1) + '\n');
} else {
  const rows = Object.entries(total).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  for (const [w, n] of rows.slice(0, Number(top))) console.log(`${String(n).padStart(7)} ${w}`);
}
