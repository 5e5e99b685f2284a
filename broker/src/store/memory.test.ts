import { MemoryStore } from './memory.js';
import { storeSuite } from './suite.js';

// The same instance every time: the suite's reopen cases run, but prove nothing about persistence here.
storeSuite('memory', async () => {
  const store = new MemoryStore();
  return { open: async () => store, cleanup: async () => {}, commits: false };
});
