#!/usr/bin/env node
// The `smq-operator` command: runs the compiled Kubernetes operator (`npm run build` produces dist/).
import '../dist/operator/src/main.js';
