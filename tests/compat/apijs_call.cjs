// One particle-api-js call, as a script using the library would make it.
// stdin: {"baseUrl", "method", "args", "clientId"?, "clientSecret"?}
// stdout: {"ok": true, "statusCode", "body"} or
//         {"ok": false, "statusCode", "message", "shortErrorDescription", "body"}
'use strict';
const Particle = require('particle-api-js');

let input = '';
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', async () => {
	const spec = JSON.parse(input);
	const options = { baseUrl: spec.baseUrl };
	if (spec.clientId !== undefined) {
		options.clientId = spec.clientId;
		options.clientSecret = spec.clientSecret;
	}
	const particle = new Particle(options);
	let out;
	try {
		const res = await particle[spec.method](spec.args);
		out = { ok: true, statusCode: res.statusCode, body: res.body };
	} catch (err) {
		out = {
			ok: false,
			statusCode: err.statusCode === undefined ? null : err.statusCode,
			message: err.message,
			shortErrorDescription: err.shortErrorDescription === undefined ? null : err.shortErrorDescription,
			body: err.body === undefined ? null : err.body
		};
	}
	process.stdout.write(JSON.stringify(out));
});
