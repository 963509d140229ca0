#!/usr/bin/env node
'use strict';
// Is FUSE usable on this machine? Run by `npm install` (after the build) and before
// `npm test`. Plain JavaScript, so it runs before anything is built.
//
//   node bin/check-fuse.js              prints one line when FUSE is missing; exits 0 (client
//                                       commands work without it; only `grid worker` needs it)
//   node bin/check-fuse.js --for-tests  the same line, exit 1 (the tests mount FUSE for real)
const fs = require('node:fs');

const INSTALL = 'apt-get install fuse libfuse2';

function problem() {
  try {
    require('fuse-native');
  } catch (e) {
    const why = String((e && e.message) || e).split('\n')[0];
    return `FUSE is not installed (${why})`;
  }
  if (!fs.existsSync('/dev/fuse')) return 'FUSE is not available: /dev/fuse does not exist (modprobe fuse; in a container: --device /dev/fuse --cap-add SYS_ADMIN)';
  return null;
}

const p = problem();
if (p) {
  if (process.argv.includes('--for-tests')) {
    process.stderr.write(`grid: the tests need FUSE: ${p}; install it with \`${INSTALL}\`\n`);
    process.exit(1);
  }
  process.stderr.write(`grid: ${p}; client commands work without it, \`grid worker\` needs it (or --staged): install it with \`${INSTALL}\`\n`);
}
