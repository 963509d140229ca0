#!/usr/bin/env node
// grid example: count the words of this task's input files.
//
// Run as `node job.js <input paths...>` by a grid worker (docs/jobs.md). The inputs are
// read-only files in the worker's FUSE mount; the working directory starts empty and every
// file left in it is an output. This job leaves one: counts.json, { word: count }.
//
// GRID_ARGS (a JSON array, from `grid submit --args ...`) may hold one number: the shortest
// word counted (default 1), e.g. `--args 4` counts only words of 4 letters or more.
'use strict';
const fs = require('node:fs');

const args = JSON.parse(process.env.GRID_ARGS || '[]');
const minLength = args.length ? Number(args[0]) : 1;
if (!Number.isInteger(minLength) || minLength < 1) {
  console.error(`wordcount: the first argument must be a whole number >= 1 (the shortest word counted), got ${JSON.stringify(args[0])}`);
  process.exit(2);
}

const counts = {};
for (const file of process.argv.slice(2)) {
  const text = fs.readFileSync(file, 'utf8');
  for (const word of countWords(text)) {
    if ([...word].length >= minLength) counts[word] = (counts[word] || 0) + 1;
  }
  console.log(`counted ${file}`);
}

// sorted keys, so equal counts give byte-identical files
const sorted = {};
for (const k of Object.keys(counts).sort()) sorted[k] = counts[k];
fs.writeFileSync('counts.json', JSON.stringify(sorted, null, 1) + '\n');
console.log(`task ${process.env.GRID_TASK_INDEX} of ${process.env.GRID_TASK_COUNT} (job ${process.env.GRID_JOB_ID}): ${Object.keys(sorted).length} distinct words`);

/** Words: runs of letters, digits and inner apostrophes, lower-cased. */
function countWords(text) {
  return (text.toLowerCase().match(/[\p{L}\p{N}]+(?:'[\p{L}\p{N}]+)*/gu) || []);
}

module.exports = { countWords };
