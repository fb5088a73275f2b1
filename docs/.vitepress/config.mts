import { defineConfig } from 'vitepress';
import { readingOrder } from '../../site/modules.js';

// The guide is the root of the site; the annotated source and the API
// reference are built beside it into the same folder by site/build.js,
// which builds this under a placeholder base (VP_BASE) and then makes every
// link relative, so the site works under any path.
const base = process.env.VP_BASE ?? '/';
const modules = readingOrder();
const byName = new Map<string, { page: string; title: string }>();
for (const module of modules) {
  byName.set(module.file.slice(4), module);
  if (!byName.has(module.file.slice(module.file.lastIndexOf('/') + 1))) {
    byName.set(module.file.slice(module.file.lastIndexOf('/') + 1), module);
  }
}
const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

// Every guide page sits at the root, so `source/…` is a working relative link.
const sourceLink = (page: string) => `source/${page}.html`;

export default defineConfig({
  title: 'browserchannel-server',
  description: 'A literate BrowserChannel (v8) and WebChannel server for Node.js',
  base,
  outDir: '../site/dist',
  cleanUrls: false,
  lastUpdated: false,
  appearance: false,
  head: [['link', { rel: 'stylesheet', href: `${base}site.css` }]],
  ignoreDeadLinks: [/^\/?(source|api)\//, /^\.\.?\/(source|api)\//],
  markdown: {
    config(md) {
      // `outbox.ts` in the guide's prose links to the module's annotated page.
      const codeInline = md.renderer.rules.code_inline!;
      md.renderer.rules.code_inline = (tokens, index, options, env, self) => {
        const html = codeInline(tokens, index, options, env, self);
        const module = byName.get(tokens[index]!.content.replace(/^src\//, ''));
        if (!module) return html;
        return `<a href="${sourceLink(module.page)}" target="_self" title="${escape(module.title.replace(/`/g, ''))}">${html}</a>`;
      };
      // <!-- reading-order --> expands to the annotated source's contents.
      const htmlBlock = md.renderer.rules.html_block!;
      md.renderer.rules.html_block = (tokens, index, options, env, self) => {
        if (tokens[index]!.content.trim() !== '<!-- reading-order -->') return htmlBlock(tokens, index, options, env, self);
        const parts: string[] = [];
        let current = '';
        for (const module of modules) {
          if (module.part !== current) {
            if (current) parts.push('</ul></li>');
            current = module.part;
            parts.push(`<li><strong>${escape(module.part)}</strong><ul>`);
          }
          const title = escape(module.title).replace(/`([^`]+)`/g, '<code>$1</code>');
          parts.push(`<li><a href="${sourceLink(module.page)}" target="_self">${title}</a> <code>${module.page}.ts</code></li>`);
        }
        return `<ol class="reading-order">${parts.join('')}</ul></li></ol>\n`;
      };
    },
  },
  themeConfig: {
    nav: [
      { text: 'Learn the protocol', link: '/protocol' },
      { text: 'Guide', link: '/getting-started' },
      { text: 'Annotated source', link: `/${sourceLink(modules[0]!.page)}`, target: '_self' },
      { text: 'API', link: '/api/index.html', target: '_self' },
    ],
    sidebar: [
      {
        text: 'Learn the protocol',
        items: [
          { text: 'The protocol, request by request', link: '/protocol' },
          { text: 'The source, in reading order', link: '/protocol#read-the-source-in-order' },
        ],
      },
      {
        text: 'Guide',
        items: [
          { text: 'Getting started', link: '/getting-started' },
          { text: 'Building an app: rooms, data, events', link: '/app' },
          { text: 'Authenticating sessions', link: '/auth' },
          { text: 'WebChannel', link: '/webchannel' },
          { text: 'Collaborative editing with ShareDB', link: '/sharedb' },
          { text: 'Options and limits', link: '/options' },
          { text: 'Deploying behind a proxy', link: '/deploying' },
          { text: 'Recovery: sessions that outlive their process', link: '/recovery' },
          { text: 'Differences from node-browserchannel', link: '/differences' },
        ],
      },
    ],
  },
});
