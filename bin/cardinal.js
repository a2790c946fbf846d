#!/usr/bin/env -S node --max-semi-space-size=4
'use strict';
// The command line is compiled to dist/ by `npm install` (the prepare script) or `npm run build`.
//
// The flag above caps each of V8's two young-generation semi-spaces at 4 MB instead of 16 MB.
// Node.js reads it only at start-up, so it sits in this line: `npx cardinal` and `bin/cardinal.js`
// get it, `node bin/cardinal.js` does not. On a store of 100,000 cards, two multigets of every card
// peaked at 132 MB of resident memory with it and 157 MB without it. A PROPFIND Depth 1 of
// 10,000 cards took about 20% longer (median 23 ms against 19 ms). docs/benchmarks.md has the runs.
require('../dist/server/cli.js').main(process.argv.slice(2));
