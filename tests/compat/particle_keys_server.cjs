// Format a server-key file with particle-cli's own `keys server` code (no device needed):
// node particle_keys_server.cjs PLATFORM KEY.der HOST PORT OUT.der
'use strict';
const path = require('path');
const KeysCommand = require(path.join(__dirname, '../../node_modules/particle-cli/src/cmd/keys'));

const [platform, derFile, host, port, out] = process.argv.slice(2);
const keys = new KeysCommand();
keys.platform = platform;
const protocol = keys._getDeviceProtocol();
keys._formatPublicKey(derFile, host, Number(port), { protocol, outputFilename: out });
process.stdout.write(protocol);
