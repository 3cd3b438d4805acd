// Preloaded into every Node process the compat tests start (NODE_OPTIONS=--require ...).
// It refuses, and records in $FERMION_COMPAT_NET_LOG, any connection or DNS lookup that is not
// to loopback, so a test can prove the real clients never phone home.
'use strict';
const fs = require('fs');
const net = require('net');
const dns = require('dns');

const logFile = process.env.FERMION_COMPAT_NET_LOG;
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost', '::ffff:127.0.0.1']);

function refuse(what) {
	if (logFile) {
		fs.appendFileSync(logFile, `${process.argv.slice(1).join(' ')} :: ${what}\n`);
	}
	const err = new Error(`compat loopback guard: refused ${what}`);
	err.code = 'ECONNREFUSED';
	return err;
}

function hostOf(args) {
	const first = args[0];
	if (Array.isArray(first)) {
		return hostOf(first);
	}
	if (first && typeof first === 'object') {
		if (first.path) {
			return null; // a Unix socket is local
		}
		return first.host || 'localhost';
	}
	if (typeof first === 'string' && !/^\d+$/.test(first)) {
		return null; // a Unix socket path
	}
	return typeof args[1] === 'string' ? args[1] : 'localhost';
}

const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function guardedConnect(...args) {
	const host = hostOf(args);
	if (host !== null && !LOOPBACK.has(host)) {
		const err = refuse(`connect to ${host}`);
		process.nextTick(() => this.destroy(err));
		return this;
	}
	return connect.apply(this, args);
};

const lookup = dns.lookup;
dns.lookup = function guardedLookup(hostname, ...rest) {
	if (!LOOPBACK.has(hostname)) {
		const cb = rest[rest.length - 1];
		const err = refuse(`DNS lookup of ${hostname}`);
		if (typeof cb === 'function') {
			process.nextTick(() => cb(err));
			return {};
		}
		throw err;
	}
	return lookup.call(this, hostname, ...rest);
};
