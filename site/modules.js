// The reading order of the annotated source, from site/modules.json, checked
// against src/: every module listed must exist and every module in src/ must
// be listed, exactly once. The build, the guide's config and the tests all
// read the order through this one function, so a new module is one line in
// modules.json and a forgotten one stops the build with its name.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function sourceFiles(folder, prefix = 'src/') {
  return readdirSync(folder).flatMap((name) => {
    const path = join(folder, name);
    if (statSync(path).isDirectory()) return sourceFiles(path, `${prefix}${name}/`);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [`${prefix}${name}`] : [];
  });
}

// A module's title is its header's first line, `// # Inbox: maps on their way up`.
function titleOf(base, file) {
  const first = readFileSync(join(base, file), 'utf8').split('\n', 1)[0];
  const match = /^\/\/ # (.+)$/.exec(first);
  if (!match) throw new Error(`site/modules.json: ${file} does not open with a "// # Title" line`);
  return match[1].trim();
}

/**
 * The modules in reading order: `{ file, page, part, title }`, where `page` is
 * the annotated page's path under `source/` without `.html` (`client/wire`).
 * Throws, naming every module, if modules.json and src/ disagree.
 */
export function readingOrder(base = root) {
  const config = JSON.parse(readFileSync(join(base, 'site/modules.json'), 'utf8'));
  const listed = config.parts.flatMap(({ part, modules }) => modules.map((file) => ({ file, part })));
  const problems = [];
  const seen = new Set();
  for (const { file } of listed) {
    if (seen.has(file)) problems.push(`listed twice: ${file}`);
    seen.add(file);
    if (!existsSync(join(base, file))) problems.push(`listed in site/modules.json but missing from src/: ${file}`);
  }
  for (const file of sourceFiles(join(base, 'src'))) {
    if (!seen.has(file)) problems.push(`in src/ but not in site/modules.json (add one line where it belongs in the reading order): ${file}`);
  }
  if (problems.length > 0) throw new Error(`site/modules.json and src/ disagree:\n  ${problems.join('\n  ')}`);
  return listed.map(({ file, part }) => ({ file, part, page: file.slice(4, -3), title: titleOf(base, file) }));
}

/** The site's title for the annotated source. */
export const sourceTitle = () => JSON.parse(readFileSync(join(root, 'site/modules.json'), 'utf8')).title;
