#!/usr/bin/env node
// Writes an nginx config for browserchannel-server processes.
//
//   node deploy/nginx-config.mjs --listen 8080 \
//     --node n1=127.0.0.1:4001 --node n2=127.0.0.1:4002 --node n3=127.0.0.1:4003 > nginx.conf
//   nginx -p "$PWD" -c nginx.conf
//
// --mode sticky (default): every request naming a session (SID, the WebChannel
//   session-id parameter, OSID) goes to the process named by the id's prefix,
//   `n2.Qm9v…` → n2, with the others as backup; the rest is spread (least_conn).
// --mode any: a plain round-robin upstream; the processes relay requests to
//   each other over Redis (browserchannel-server/redis).
// In both, creates (a RID and no session id) take turns in a group of their own.
// --listen PORT listens on 127.0.0.1 only; give HOST:PORT (0.0.0.0:80) to listen elsewhere.
// --session-param NAME: the WebChannel httpSessionIdParam (default gsessionid).
// --read-timeout SECONDS: above keepAliveInterval (default 75).
// Paths (pid, logs, temp files) are relative to nginx's -p prefix.
import { pathToFileURL } from 'node:url';

/** Returns the config text for `nodes` ([{ id, address }]). */
export function nginxConfig({ listen = '8080', nodes, mode = 'sticky', sessionParam = 'gsessionid', readTimeout = 75 }) {
  if (!Array.isArray(nodes) || nodes.length === 0) throw new Error('at least one --node id=host:port');
  for (const { id, address } of nodes) {
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(id)) throw new Error(`node id ${JSON.stringify(id)}: use A-Z a-z 0-9 _ - (the server's nodeId)`);
    if (!/^[\w.:[\]-]+$/.test(address)) throw new Error(`node address ${JSON.stringify(address)}: use host:port`);
  }
  if (!/^[A-Za-z0-9_]+$/.test(sessionParam)) throw new Error('--session-param: letters, digits and _ only');
  const listenOn = /^\d+$/.test(String(listen)) ? `127.0.0.1:${listen}` : listen;
  const servers = (extra = '') => nodes.map(({ address }) => `    server ${address}${extra};`).join('\n');
  const lines = [];
  const out = (text = '') => lines.push(text);
  // Creates (a RID, no session id yet; a WebChannel fast handshake says SID=null) get a group
  // of their own. In one shared group a page's other requests (its HTML, scripts, /test) turn
  // the rotation too: with three of them per page, every create lands on the same process.
  const creates = () => {
    out();
    out('  # Creates (a RID and no session id yet) take turns in a group of their own, so sessions');
    out('  # are dealt out evenly whatever else the pages load through bc_any.');
    out('  upstream bc_new {');
    out('    least_conn;');
    out(servers());
    out('    keepalive 16;');
    out('  }');
    out('  map $arg_RID $bc_fresh {');
    out('    "" bc_any;');
    out('    default bc_new;');
    out('  }');
  };

  out(`# nginx in front of ${nodes.length} browserchannel-server processes (${mode === 'any' ? 'round robin, relayed over Redis' : 'sticky by session id'}).`);
  out(`# Made by: node deploy/nginx-config.mjs --listen ${listen} --mode ${mode} ${nodes.map((n) => `--node ${n.id}=${n.address}`).join(' ')}`);
  out('# Run: nginx -p <dir> -c <dir>/nginx.conf   (pid, log and temp paths below are relative to <dir>)');
  out('worker_processes 1;');
  out('pid nginx.pid;');
  out('error_log error.log warn;');
  out('events { worker_connections 4096; }');
  out();
  out('http {');
  out('  access_log off;');
  out('  client_body_temp_path tmp-body;');
  out('  proxy_temp_path tmp-proxy;');
  out('  fastcgi_temp_path tmp-fastcgi;');
  out('  uwsgi_temp_path tmp-uwsgi;');
  out('  scgi_temp_path tmp-scgi;');
  out();
  if (mode === 'any') {
    out('  # Any process serves any request: one that does not own the session relays it to the');
    out('  # owner over Redis. So a plain round robin is enough, and no stickiness is needed.');
    out('  upstream bc_any {');
    out(servers());
    out('    keepalive 32;');
    out('  }');
    creates();
    out('  map $arg_SID $bc_upstream {');
    out('    "" $bc_fresh;');
    out('    null $bc_fresh;');
    out('    default bc_any;');
    out('  }');
  } else {
    out('  # One group per process, the others as backup: when a process is down its clients reach');
    out('  # another one, which answers "400 Unknown SID", and they start a new session (not a 502).');
    for (const { id, address } of nodes) {
      out(`  upstream bc_${id} {`);
      out(`    server ${address};`);
      for (const other of nodes) if (other.id !== id) out(`    server ${other.address} backup;`);
      out('    keepalive 16;');
      out('  }');
    }
    out();
    out('  # Requests with no session (/test, the app\'s own pages): the least busy process.');
    out('  upstream bc_any {');
    out('    least_conn;');
    out(servers());
    out('    keepalive 32;');
    out('  }');
    creates();
    out();
    out('  # The owner, from the text before the dot of the session id: SID first, then the WebChannel');
    out(`  # session-id parameter (${sessionParam}), then OSID (a reconnect retiring its old session).`);
    const map = (variable, name, fallback) => {
      out(`  map ${variable} ${name} {`);
      for (const { id } of nodes) out(`    ~^${id}\\. bc_${id};`);
      out(`    default ${fallback};`);
      out('  }');
    };
    map('$arg_OSID', '$bc_by_osid', '$bc_fresh');
    map(`$arg_${sessionParam}`, '$bc_by_param', '$bc_by_osid');
    map('$arg_SID', '$bc_upstream', '$bc_by_param');
  }
  out();
  out('  server {');
  out(`    listen ${listenOn};`);
  out('    location / {');
  out('      proxy_pass http://$bc_upstream;');
  out('      # HTTP/1.1 with no "Connection: close", so upstream connections are kept alive.');
  out('      proxy_http_version 1.1;');
  out('      proxy_set_header Connection "";');
  out('      proxy_set_header Host $host;');
  out('      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;');
  out('      # Back channels stream: pass each chunk on at once (they also send X-Accel-Buffering: no).');
  out('      proxy_buffering off;');
  out('      # The longest quiet gap on a back channel is one heartbeat (keepAliveInterval, 20 s).');
  out(`      proxy_read_timeout ${readTimeout}s;`);
  out('      # A request a dying process accepted is tried on the next one, POSTs included: the');
  out('      # owner of the session drops a forward batch it has already seen (same RID and map ids).');
  out('      proxy_next_upstream error timeout non_idempotent;');
  out('    }');
  out('  }');
  out('}');
  return lines.join('\n') + '\n';
}

function parseArgs(argv) {
  const options = { nodes: [] };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--listen') options.listen = value;
    else if (flag === '--mode') options.mode = value;
    else if (flag === '--session-param') options.sessionParam = value;
    else if (flag === '--read-timeout') options.readTimeout = Number(value);
    else if (flag === '--node') {
      const [id, address] = value.split('=');
      options.nodes.push({ id, address });
    } else throw new Error(`unknown flag ${flag}`);
  }
  if (options.mode && options.mode !== 'sticky' && options.mode !== 'any') throw new Error('--mode sticky or any');
  return options;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    process.stdout.write(nginxConfig(parseArgs(process.argv.slice(2))));
  } catch (error) {
    console.error(`nginx-config: ${error.message}`);
    process.exit(2);
  }
}
