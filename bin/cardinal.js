#!/usr/bin/env node
'use strict';
// The command line is compiled to dist/ by `npm install` (the prepare script) or `npm run build`.
require('../dist/server/cli.js').main(process.argv.slice(2));
