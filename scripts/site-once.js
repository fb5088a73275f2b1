// `npm start` runs this before the chat demo: the demo's page links to the
// guide, the annotated source and the API reference, which it serves from
// site/dist. If that folder has not been built yet, build it now (about
// 15 to 30 seconds, once); later starts skip this. `npm run docs:build`
// rebuilds it after the docs change.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (!existsSync(join(root, 'site/dist/index.html'))) {
  console.log('Building the site once (guide, annotated source, API), for the demo\'s links…');
  execFileSync(process.execPath, [join(root, 'site/build.js')], { cwd: root, stdio: 'inherit' });
}
