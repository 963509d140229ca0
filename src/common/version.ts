/** Software and protocol versions every node announces. */
import { PROTOCOL_VERSION } from '../messages';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const pkg = require('../../../package.json') as { version: string };

export const SOFTWARE_VERSION: string = pkg.version;
export { PROTOCOL_VERSION };
