// The site's search box, on every page: guide, annotated source and API.
// The index is a script (search-index.js, built with the site) that sets
// window.SITE_SEARCH_INDEX to [kind, url, title, text] rows; urls are
// relative to the site's root, which the page names (data-site-root) or,
// on the guide, VitePress computes (window.__SITE_BASE__).
(function () {
  'use strict';
  function siteRoot() {
    if (window.__SITE_BASE__) return window.__SITE_BASE__;
    return (document.body && document.body.getAttribute('data-site-root')) || './';
  }
  function terms(text) {
    return text.toLowerCase().split(/[^a-z0-9_$.-]+/).filter(Boolean);
  }
  function search(query) {
    var words = terms(query);
    if (words.length === 0) return [];
    var rows = window.SITE_SEARCH_INDEX || [];
    var found = [];
    for (var i = 0; i < rows.length; i++) {
      var title = rows[i][2].toLowerCase();
      var text = rows[i][3].toLowerCase();
      var score = 0;
      for (var w = 0; w < words.length; w++) {
        var inTitle = title.indexOf(words[w]) !== -1;
        if (!inTitle && text.indexOf(words[w]) === -1) { score = -1; break; }
        score += inTitle ? 10 : 1;
      }
      if (score > 0) found.push({ row: rows[i], score: score, order: i });
    }
    found.sort(function (a, b) { return b.score - a.score || a.order - b.order; });
    return found.slice(0, 20).map(function (hit) { return hit.row; });
  }
  function snippet(text, query) {
    var word = terms(query)[0] || '';
    var at = Math.max(0, text.toLowerCase().indexOf(word) - 40);
    return (at > 0 ? '…' : '') + text.slice(at, at + 140) + (text.length > at + 140 ? '…' : '');
  }
  function mount(box) {
    if (box.getAttribute('data-mounted')) return;
    box.setAttribute('data-mounted', '1');
    box.classList.add('site-search');
    var input = document.createElement('input');
    input.type = 'search';
    input.placeholder = 'Search guide, source, API';
    input.setAttribute('aria-label', 'Search the guide, the annotated source and the API');
    var list = document.createElement('ul');
    list.className = 'site-search-results';
    list.hidden = true;
    box.appendChild(input);
    box.appendChild(list);
    function show() {
      var query = input.value.trim();
      list.textContent = '';
      if (query === '') { list.hidden = true; return; }
      var hits = search(query);
      if (hits.length === 0) {
        var none = document.createElement('li');
        none.className = 'empty';
        none.textContent = 'Nothing found for “' + query + '”';
        list.appendChild(none);
      }
      hits.forEach(function (row) {
        var item = document.createElement('li');
        var link = document.createElement('a');
        link.href = siteRoot() + row[1];
        var kind = document.createElement('span');
        kind.className = 'kind';
        kind.textContent = row[0];
        var where = document.createElement('span');
        where.className = 'where';
        where.textContent = row[2];
        var text = document.createElement('span');
        text.className = 'snippet';
        text.textContent = snippet(row[3], query);
        link.appendChild(kind);
        link.appendChild(where);
        link.appendChild(text);
        item.appendChild(link);
        list.appendChild(item);
      });
      list.hidden = false;
    }
    input.addEventListener('input', show);
    input.addEventListener('focus', show);
    input.addEventListener('keydown', function (event) {
      if (event.key === 'Escape') { list.hidden = true; input.blur(); }
      if (event.key === 'Enter') {
        var first = list.querySelector('a');
        if (first) window.location.href = first.href;
      }
    });
    document.addEventListener('click', function (event) {
      if (!box.contains(event.target)) list.hidden = true;
    });
  }
  window.SiteSearch = { search: search, mount: mount };
  function mountAll() {
    var boxes = document.querySelectorAll('[data-site-search]');
    for (var i = 0; i < boxes.length; i++) mount(boxes[i]);
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', mountAll);
  else mountAll();
})();
