/**
 * docs/protocol.md stays true: its generated layout tables equal what the schema generates now,
 * and it documents every DecodeError code and every wire error code with its number.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { DECODE_ERROR_CODES, ERROR_CODES } from '../../src/messages';
import { GENERATED_BEGIN, GENERATED_END, updateDoc } from '../../src/messages/describe';

const DOC = path.resolve(__dirname, '../../../docs/protocol.md');

describe('docs/protocol.md', () => {
  const text = readFileSync(DOC, 'utf8');

  it('has the generated tables, up to date (node dist/src/messages/describe.js --update docs/protocol.md)', () => {
    assert.ok(text.includes(GENERATED_BEGIN) && text.includes(GENERATED_END), 'the GENERATED markers are missing');
    assert.equal(text, updateDoc(text), 'the layout tables are stale: run `npx tsc -p . && node dist/src/messages/describe.js --update docs/protocol.md`');
  });

  it('documents every DecodeError code', () => {
    for (const c of DECODE_ERROR_CODES) assert.match(text, new RegExp('\\| `' + c + '` \\|'), c);
  });

  it('documents every error_reply code with its number', () => {
    for (const [name, n] of Object.entries(ERROR_CODES)) assert.match(text, new RegExp(`\\| ${n} \\| \`${name}\` \\|`), name);
  });
});
