// Draws the ratio table as an SVG bar chart: one row per scenario, one bar
// per peer, showing how many times better ours is than that peer. The
// axis is logarithmic and centred on ×1 (a tie): bars to the right mean
// ours leads, bars to the left mean the peer does. Plain SVG text, no
// dependencies, readable in a browser or on GitHub.

const PEER_COLOURS = { 'ours-nostats': '#9467bd', bc210: '#d62728', engineio: '#1f77b4', socketio: '#17becf', sockjs: '#2ca02c', minimal: '#8c564b', floor: '#bcbd22', bare: '#7f7f7f' };
const PEER_NAMES = { 'ours-nostats': 'ours, stats off', bc210: 'node-browserchannel 2.1.0', engineio: 'engine.io (polling)', socketio: 'socket.io (polling)', sockjs: 'sockjs (xhr-streaming)', minimal: 'minimal BrowserChannel', floor: 'HTTP floor', bare: 'bare node:http' };

const escapeXml = (text) => String(text).replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * @param {{ scenarios: Record<string, { ratios?: Record<string, number> }>, machine: string }} report
 * @returns {string} an SVG document
 */
export function chartSvg(report) {
  const rows = Object.entries(report.scenarios).filter(([, s]) => s.ratios && Object.keys(s.ratios).length > 0);
  const peers = Object.keys(PEER_COLOURS).filter((peer) => rows.some(([, s]) => peer in s.ratios));
  const labelWidth = 370;
  const plotWidth = 460;
  const barHeight = 11;
  const rowGap = 10;
  const top = 72;
  const maxLog = 2; // the axis runs from ×1/4 to ×4; longer bars are clipped and labelled
  const x = (ratio) => labelWidth + plotWidth / 2 + (Math.max(-maxLog, Math.min(maxLog, Math.log2(ratio))) / maxLog) * (plotWidth / 2);
  const parts = [];
  let y = top;
  for (const [name, scenario] of rows) {
    const present = peers.filter((peer) => peer in scenario.ratios);
    parts.push(`<text x="${labelWidth - 10}" y="${y + (present.length * barHeight) / 2 + 4}" text-anchor="end" class="label">${escapeXml(name)}</text>`);
    for (const peer of present) {
      const ratio = scenario.ratios[peer];
      const x0 = x(1);
      const x1 = x(ratio);
      const left = Math.min(x0, x1);
      parts.push(`<rect x="${left.toFixed(1)}" y="${y}" width="${Math.max(1, Math.abs(x1 - x0)).toFixed(1)}" height="${barHeight - 2}" fill="${PEER_COLOURS[peer]}"><title>${escapeXml(`${PEER_NAMES[peer]}: ×${ratio.toFixed(2)}`)}</title></rect>`);
      const textX = ratio >= 1 ? x1 + 4 : x1 - 4;
      parts.push(`<text x="${textX.toFixed(1)}" y="${y + barHeight - 3}" text-anchor="${ratio >= 1 ? 'start' : 'end'}" class="value">×${ratio.toFixed(2)}</text>`);
      y += barHeight;
    }
    y += rowGap;
  }
  const width = labelWidth + plotWidth + 60;
  // The legend wraps onto as many lines as it needs.
  const legendLines = [[]];
  let lineWidth = 10;
  for (const peer of peers) {
    const itemWidth = 30 + PEER_NAMES[peer].length * 6;
    if (lineWidth + itemWidth > width && legendLines.at(-1).length > 0) legendLines.push([]), (lineWidth = 10);
    legendLines.at(-1).push([peer, lineWidth]);
    lineWidth += itemWidth;
  }
  const height = y + 6 + legendLines.length * 14;
  const ticks = [0.25, 0.5, 1, 2, 4].map((t) => `<line x1="${x(t)}" y1="${top - 6}" x2="${x(t)}" y2="${y - rowGap}" class="${t === 1 ? 'one' : 'grid'}"/><text x="${x(t)}" y="${top - 10}" text-anchor="middle" class="tick">×${t}</text>`);
  const legend = legendLines.flatMap((line, row) => line.map(([peer, legendX]) => {
    const base = y + 6 + row * 14;
    return `<rect x="${legendX}" y="${base}" width="10" height="10" fill="${PEER_COLOURS[peer]}"/><text x="${legendX + 14}" y="${base + 9}" class="tick">${escapeXml(PEER_NAMES[peer])}</text>`;
  }));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height + 6}" viewBox="0 0 ${width} ${height + 6}" font-family="system-ui, sans-serif">`,
    '<style>.label{font-size:11px;fill:#222}.value{font-size:9px;fill:#333}.tick{font-size:10px;fill:#555}.grid{stroke:#ddd}.one{stroke:#000;stroke-width:1.5}</style>',
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="18" font-size="14" font-weight="600">browserchannel-server against its peers: ours ÷ peer (right of ×1: ours leads)</text>`,
    `<text x="10" y="34" class="tick">${escapeXml(`${report.date ? `${report.date}; ` : ''}${report.machine}; medians of ${report.rounds} rounds`)}</text>`,
    '<text x="10" y="48" class="tick">Rates are higher-is-better; CPU, time, latency and memory lower-is-better; all turned into "times better".</text>',
    ...ticks,
    ...parts,
    ...legend,
    '</svg>',
  ].join('\n');
}
