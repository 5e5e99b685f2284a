#!/usr/bin/env node
// The `smq` command: runs the compiled broker (`npm run build` produces dist/).
import '../dist/broker/src/main.js';
