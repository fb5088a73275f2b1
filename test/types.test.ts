// Typed messages: test/types/typed-messages.ts compiles as it is (npm run
// typecheck does that), and with its `@ts-expect-error` comments removed it
// has exactly one error on each line that carried one.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

test('every wrong use in the type test is an error on its own line', () => {
  const source = readFileSync(join(root, 'test/types/typed-messages.ts'), 'utf8');
  const lines = source.split('\n');
  const expected = lines.flatMap((line, index) => (/^\s*\/\/ @ts-expect-error/.test(line) ? [index + 2] : []));
  assert.ok(expected.length >= 10, `found ${expected.length} expectations`);
  const stripped = lines.map((line) => (/^\s*\/\/ @ts-expect-error/.test(line) ? '' : line)).join('\n');
  const dir = mkdtempSync(join(root, 'test/types/.tmp-'));
  try {
    writeFileSync(join(dir, 'stripped.ts'), stripped.replaceAll("'../../src/", "'../../../src/"));
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      extends: '../../../tsconfig.json', compilerOptions: { noEmit: true }, include: [], files: ['stripped.ts'],
    }));
    let output = '';
    try {
      execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], { encoding: 'utf8', stdio: 'pipe' });
    } catch (error) {
      output = (error as { stdout: string }).stdout;
    }
    const errorLines = [...output.matchAll(/stripped\.ts\((\d+),\d+\): error/g)].map((match) => Number(match[1]));
    assert.deepEqual([...new Set(errorLines)], expected, output);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
