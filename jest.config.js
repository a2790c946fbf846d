/** Tests run from the TypeScript sources; `npm test` type-checks them with tsc first. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
  testTimeout: 30000,
  // A child process or socket a failed test left behind must not keep CI waiting.
  forceExit: true,
};
