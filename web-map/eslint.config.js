// The web map's linter (issue 18 item 6): eslint's recommended rules plus the few that keep the
// page within its Content-Security-Policy (no eval, no string timers) and its habits (no `var`,
// `===`). `npm run lint`; scripts/test.sh runs it.
import js from '@eslint/js';
import globals from 'globals';

export default [
  { ignores: ['dist/**', 'node_modules/**'] },
  js.configs.recommended,
  {
    files: ['src/**/*.js'],
    languageOptions: { ecmaVersion: 2024, sourceType: 'module', globals: { ...globals.browser } },
  },
  {
    // Loaded as a classic script before the modules (it must see the first errors).
    files: ['src/hooks.js'],
    languageOptions: { sourceType: 'script' },
  },
  {
    files: ['src/sw.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.serviceworker } },
  },
  {
    files: ['*.js', '*.mjs', 'test/**/*.mjs'],
    languageOptions: { ecmaVersion: 2024, sourceType: 'module', globals: { ...globals.node } },
  },
  {
    rules: {
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-var': 'error',
      'prefer-const': 'error',
      'no-eval': 'error',
      'no-implied-eval': 'error',
      'no-new-func': 'error',
      'no-unused-vars': ['error', { argsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Markup from strings would bypass dom.js's text nodes and the CSP's refusal of inline styles.
      'no-restricted-properties': ['error',
        { property: 'innerHTML', message: 'build elements with dom.js h()' },
        { property: 'outerHTML', message: 'build elements with dom.js h()' },
        { property: 'insertAdjacentHTML', message: 'build elements with dom.js h()' }],
    },
  },
];
