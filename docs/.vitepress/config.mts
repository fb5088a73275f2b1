import { defineConfig } from 'vitepress';

// The guide is the root of the site; the annotated source (docco) and the
// API reference (TypeDoc) are built beside it into the same folder, so the
// links to them are plain relative links that VitePress cannot check.
export default defineConfig({
  title: 'browserchannel-server',
  description: 'A literate BrowserChannel (v8) and WebChannel server for Node.js',
  base: '/',
  outDir: '../site/dist',
  cleanUrls: false,
  lastUpdated: false,
  ignoreDeadLinks: [/^\/?(source|api)\//, /^\.\.?\/(source|api)\//],
  themeConfig: {
    nav: [
      { text: 'Guide', link: '/getting-started' },
      { text: 'Annotated source', link: '/source/headers.html', target: '_self' },
      { text: 'API', link: '/api/index.html', target: '_self' },
    ],
    sidebar: [
      {
        text: 'Guide',
        items: [
          { text: 'Getting started', link: '/getting-started' },
          { text: 'The protocol, request by request', link: '/protocol' },
          { text: 'WebChannel', link: '/webchannel' },
          { text: 'Collaborative editing with ShareDB', link: '/sharedb' },
          { text: 'Options and limits', link: '/options' },
          { text: 'Deploying behind a proxy', link: '/deploying' },
          { text: 'Differences from node-browserchannel', link: '/differences' },
        ],
      },
    ],
    search: { provider: 'local' },
  },
});
