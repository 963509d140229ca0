#!/usr/bin/env node
'use strict';
// The grid command. Built code lives in dist/ (npm install builds it).
let main;
try {
  ({ main } = require('../dist/src/cli/index.js'));
} catch (e) {
  if (e && e.code === 'MODULE_NOT_FOUND' && String(e.message).includes('dist/src/cli')) {
    process.stderr.write('grid: not built yet; run `npm install` (or `npm run build`) in the grid checkout\n');
    process.exit(1);
  }
  throw e;
}
main(process.argv).catch((e) => {
  process.stderr.write(`grid: ${e && e.message ? e.message : e}\n`);
  process.exit(1);
});
