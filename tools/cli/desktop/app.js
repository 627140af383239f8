/* peerback desktop: the web app. Everything comes from this program's own
 * address; the server holds the data and the keys, the page shows them. */
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const state = { csrf: '', devices: [], progress: {}, expires: 0, page: 0, query: '' };

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') e.textContent = v; else if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
    }
    for (const k of kids) if (k != null) e.append(k);
    return e;
  }
  function bytes(n) {
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + ' ' + u[i];
  }
  function when(t) { return t ? new Date(t * 1000).toLocaleString() : 'never'; }
  async function get(path) {
    const r = await fetch(path, { credentials: 'same-origin' });
    if (!r.ok) throw new Error((await r.json().catch(() => ({}))).message || r.statusText);
    return r.json();
  }
  async function post(path, body) {
    const r = await fetch(path, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-PB-CSRF': state.csrf },
      body: JSON.stringify(body || {})
    });
    const j = await r.json().catch(() => ({}));
    if (!r.ok) { const e = new Error(j.message || r.statusText); e.code = j.code; throw e; }
    return j;
  }

  /* ---- pages ---- */
  const pages = ['pair', 'phones', 'snapshots', 'instructions', 'open'];
  function show() {
    const name = pages.includes(location.hash.slice(1)) ? location.hash.slice(1) : 'pair';
    for (const p of pages) {
      $('page-' + p).hidden = p !== name;
      const a = document.querySelector('nav a[href="#' + p + '"]');
      if (p === name) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    document.title = 'peerback: ' + document.querySelector('nav a[href="#' + name + '"]').textContent;
    if (name === 'phones' || name === 'snapshots' || name === 'open' || name === 'instructions') loadDevices();
    if (name === 'instructions') loadInstructions();
    if (name === 'open') loadBackup();
  }

  /* Pair */
  async function loadPair() {
    const p = await get('/api/pair');
    if (!p.uri) return;
    state.expires = p.expires;
    state.skew = Date.now() / 1000 - p.now;
    $('qr').src = '/api/qr.svg?n=' + p.n;
    $('pair-uri').textContent = p.uri;
    tick();
  }
  function tick() {
    if (!state.expires) return;
    const left = Math.max(0, Math.round(state.expires - (Date.now() / 1000 - (state.skew || 0))));
    $('expiry').textContent = left > 0 ? 'This code expires in ' + Math.floor(left / 60) + ':' + String(left % 60).padStart(2, '0') + '.' : 'This code has expired; a new one is on its way.';
  }

  /* Phones and snapshots */
  async function loadDevices() {
    try { state.devices = await get('/api/devices'); } catch (e) { return; }
    state.backup = await get('/api/backup').catch(() => null);
    renderPhones(); renderSnapshots(); renderSelects();
  }
  function progressOf(dev) {
    const p = state.progress[dev.device];
    if (!p) return null;
    const last = dev.snapshots && dev.snapshots[0] ? dev.snapshots[0].size : 0;
    /* The host knows no total: the last snapshot's size stands in, and a
     * finished backup fills the bar. */
    const max = p.done ? Math.max(p.bytes, 1) : Math.max(last, p.bytes * 1.1, 1);
    const secs = (Date.now() - p.start) / 1000;
    const rate = secs > 0 ? p.bytes / secs : 0;
    const left = rate > 0 && last > p.bytes ? Math.round((last - p.bytes) / rate) + ' s left' : '';
    return el('div', { class: 'progress' },
      el('progress', { max: String(Math.round(max)), value: String(p.bytes), 'aria-label': 'Backup of ' + (dev.name || dev.device), 'data-bytes': String(p.bytes), 'data-updates': String(p.updates) }),
      el('p', { text: (p.done ? 'Done: ' : 'Receiving: ') + bytes(p.bytes) + ', ' + p.items + ' chunks, ' + bytes(rate) + '/s ' + left }));
  }
  function renderPhones() {
    const list = $('phones-list');
    list.replaceChildren();
    if (!state.devices.length) list.append(el('p', { text: 'No phone is paired yet. Pair one on the Pair a phone page.' }));
    for (const d of state.devices) {
      const card = el('article', { class: 'card', 'data-device': d.device },
        el('h3', { text: (d.name || d.device.slice(0, 8)) + (d.revoked ? ' (revoked)' : '') }),
        el('dl', {},
          el('dt', { text: 'Account' }), el('dd', { text: d.account }),
          el('dt', { text: 'Device' }), el('dd', { text: d.device }),
          el('dt', { text: 'Last seen' }), el('dd', { text: when(d.last_seen) }),
          el('dt', { text: 'Stored' }), el('dd', { text: bytes(d.bytes) + ' of ' + bytes(d.quota) }),
          el('dt', { text: 'Snapshots' }), el('dd', { class: 'snapshot-count', text: String(d.snapshot_count) })),
        progressOf(d),
        d.revoked ? null : el('button', { type: 'button', class: 'danger', text: 'Revoke', onclick: () => revoke(d) }));
      list.append(card);
    }
  }
  async function revoke(d) {
    if (!confirm('Revoke ' + (d.name || d.device) + '? It will no longer reach this host until paired again.')) return;
    try { await post('/api/revoke', { device: d.device }); } catch (e) { alert(e.message); }
    loadDevices();
  }
  function renderSnapshots() {
    const list = $('snapshots-list');
    list.replaceChildren();
    for (const d of state.devices) {
      /* What a snapshot holds is inside its encryption: known for the one
       * open on the Open a backup page. */
      const b = state.backup;
      const items = (s) => (b && b.open && b.device === d.device && b.snapshot === s.id ? Object.entries(b.items).map(([k, n]) => n + ' ' + k).join(', ') : 'open it to see');
      const rows = d.snapshots.map((s) => el('tr', {}, el('td', { text: String(s.id) }), el('td', { text: when(s.time) }), el('td', { text: items(s) }), el('td', { text: String(s.chunks) }), el('td', { text: bytes(s.size) })));
      list.append(el('section', { class: 'card', 'data-device': d.device },
        el('h3', { text: d.name || d.device.slice(0, 8) }),
        rows.length ? el('table', {}, el('thead', {}, el('tr', {}, el('th', { text: 'Snapshot' }), el('th', { text: 'Time' }), el('th', { text: 'Items' }), el('th', { text: 'Chunks' }), el('th', { text: 'Size' }))), el('tbody', {}, ...rows)) : el('p', { text: 'No snapshot yet.' })));
    }
  }
  function renderSelects() {
    for (const id of ['in-device', 'in-to', 'open-device']) {
      const s = $(id), keep = s.value;
      s.replaceChildren();
      if (id === 'in-to') s.append(el('option', { value: '', text: '—' }));
      for (const d of state.devices) if (!d.revoked || id === 'open-device') s.append(el('option', { value: d.device, text: (d.name || d.device.slice(0, 8)) + ' (' + d.account + ')' }));
      if (keep) s.value = keep;
    }
  }

  /* Instructions */
  async function loadInstructions() {
    let list;
    try { list = await get('/api/instructions'); } catch (e) { return; }
    const rows = list.map((i) => el('tr', {}, el('td', { text: String(i.id) }), el('td', { text: i.op }), el('td', { text: i.iccid }), el('td', { text: i.device.slice(0, 8) }), el('td', { text: i.state }), el('td', { text: i.result })));
    $('instructions-list').replaceChildren(rows.length ? el('table', {}, el('thead', {}, el('tr', {}, ...['#', 'Instruction', 'ICCID', 'Phone', 'State', 'Result'].map((t) => el('th', { text: t })))), el('tbody', {}, ...rows)) : el('p', { text: 'No instruction yet.' }));
  }
  async function instruct(ev) {
    ev.preventDefault();
    const body = { device: $('in-device').value, op: $('in-op').value, iccid: $('in-iccid').value, to: $('in-to').value };
    if (!confirm('Queue ' + body.op + ' of ' + body.iccid + '?')) return;
    try { await post('/api/instruct', body); $('instruct-result').textContent = 'Queued; the phone carries it out at its next connection.'; } catch (e) { $('instruct-result').textContent = e.message; }
    loadInstructions();
  }

  /* Open a backup */
  async function loadBackup() {
    const b = await get('/api/backup').catch(() => ({ open: false }));
    $('backup').hidden = !b.open;
    $('open-form').hidden = b.open;
    if (!b.open) return;
    const it = b.items;
    $('backup-summary').dataset.items = JSON.stringify(it);
    $('backup-summary').textContent = 'Snapshot ' + b.snapshot + ' of ' + b.device.slice(0, 8) + ', ' + when(b.time) + ': ' + it.chat + ' chat items (' + b.messages + ' messages), ' + it.contacts + ' contacts items, ' + it.mifare + ' MIFARE cards, ' + it.credentials + ' credentials, ' + it.sim + ' SIM profiles. Read-only; secrets stay masked.';
    const dl = $('downloads');
    dl.replaceChildren();
    for (const [kind, fmt, label] of [['contacts', 'vcard4', 'Contacts as vCard 4'], ['contacts', 'vcard3', 'Contacts as vCard 3'], ['chat', 'telegram', 'Chats as Telegram JSON'], ['chat', 'whatsapp', 'Chats as WhatsApp text'], ['mifare', 'mct', 'MIFARE cards as .mct'], ['mifare', 'mfd', 'MIFARE cards as .mfd'], ['mifare', 'nfc', 'MIFARE cards for Flipper (.nfc)']])
      dl.append(el('li', {}, el('details', { ontoggle: (e) => exportFiles(e.target, kind, fmt) }, el('summary', { text: label }), el('ul', {}))));
    search();
    loadItems();
  }
  /* The files of one export, each a download. */
  async function exportFiles(details, kind, fmt) {
    const ul = details.querySelector('ul');
    if (!details.open || ul.childElementCount) return;
    const q = '/api/export?kind=' + kind + '&format=' + fmt;
    let files;
    try { files = await get(q + '&list=1'); } catch (e) { ul.append(el('li', { text: e.message })); return; }
    for (const f of files) ul.append(el('li', {}, el('a', { href: q + '&file=' + encodeURIComponent(f.file), download: '', text: f.file }), ' (' + bytes(f.size) + ')'));
  }
  async function open(ev) {
    ev.preventDefault();
    $('open-error').textContent = '';
    const button = $('open-form').querySelector('button');
    button.disabled = true;
    $('open-status').textContent = 'Decrypting the backup…';
    try {
      await post('/api/open', { device: $('open-device').value, passphrase: $('open-pass').value });
      $('open-pass').value = '';
      loadBackup();
    } catch (e) {
      $('open-pass').value = '';
      $('open-error').textContent = e.code === 'PB_ESTORE_PASSPHRASE' ? 'Wrong recovery passphrase. Check it and try again.' : 'Cannot open this backup: ' + e.message;
    }
    button.disabled = false;
    $('open-status').textContent = '';
  }
  /* A message as backed up: a Telegram JSON object, or a WhatsApp line. */
  function message(m) {
    let who = '', date = '', text = m.text;
    try {
      const o = JSON.parse(m.text);
      who = o.from || o.actor || '';
      date = o.date || '';
      text = Array.isArray(o.text) ? o.text.map((t) => (typeof t === 'string' ? t : t.text)).join('') : String(o.text || '');
      if (o.media_type || o.photo || o.file) text += ' [' + (o.media_type || (o.photo ? 'photo' : 'file')) + ']';
    } catch (e) { /* a line of text */ }
    return el('li', {}, el('span', { class: 'muted', text: (date ? date.replace('T', ' ') + ' ' : '') + (who ? who + ': ' : '') }), el('span', { class: 'text', text }),
      el('span', { class: 'muted', text: ' (' + m.id.split('/').slice(0, 2).join(' ') + ')' }));
  }
  function vcard(text) {
    const get = (re) => { const m = text.match(re); return m ? m[1].trim() : ''; };
    const all = (re) => [...text.matchAll(re)].map((m) => m[1].replace(/^tel:/, '').trim());
    return { fn: get(/^FN[^:]*:(.*)$/m), tel: all(/^TEL[^:]*:(?:tel:)?(.*)$/mg), email: all(/^EMAIL[^:]*:(.*)$/mg), groups: get(/^CATEGORIES[^:]*:(.*)$/m).split(/(?<!\\),/).map((g) => g.replace(/\\,/g, ',')).join(', ') };
  }
  /* A table that may scroll sideways in a narrow window: focusable, so
   * that the keyboard scrolls it too. */
  function table(head, rows, label) {
    return el('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': label || head.join(', ') }, el('table', {}, el('thead', {}, el('tr', {}, ...head.map((h) => el('th', { text: h })))),
      el('tbody', {}, ...rows.map((r) => el('tr', {}, ...r.map((c) => el('td', { text: c })))))));
  }
  async function loadItems() {
    const rv = $('reveal').checked ? '&reveal=1' : '';
    const [ct, mf, cr, sm] = await Promise.all(['contacts', 'mifare', 'credentials', 'sim'].map((k) => get('/api/items?kind=' + k + rv).catch(() => ({ items: [], total: 0 }))));
    const cards = ct.items.flatMap((i) => String(i.value).split(/(?=^BEGIN:VCARD)/m)).filter((v) => /BEGIN:VCARD/.test(v)).map(vcard);
    $('contacts').replaceChildren(el('p', { text: ct.total + ' contacts items; the first ' + cards.length + ' cards:' }),
      table(['Name', 'Phone', 'Email', 'Groups'], cards.map((c) => [c.fn, c.tel.join(', '), c.email.join(', '), c.groups])));
    $('cards').replaceChildren(...mf.items.map((i) => el('details', {}, el('summary', { text: i.path + ' (' + i.size + ' bytes, ' + i.value.length + ' sectors)' }),
      table(['Sector', 'Blocks', 'Access bits C1C2C3 (blocks 0-3)', 'Key A', 'Key B'], i.value.map((s) => [String(s.sector), s.blocks.join(' '), s.access.join(' '), s.key_a, s.key_b])))));
    $('credentials').replaceChildren(table(['Id', 'Type', 'Issuer', 'AID', 'Expires', 'Data'], cr.items.map((i) => [i.value.id || i.id, i.value.type || '', i.value.issuer || '', i.value.aid || '', i.value.expires ? when(i.value.expires) : '', String(i.value.data || '')])));
    $('sims').replaceChildren(table(['ICCID', 'IMSI', 'MSISDN', 'Ki', 'OPc', 'PIN ADM'], sm.items.map((i) => [i.value.iccid, i.value.imsi, i.value.msisdn, i.value.ki, i.value.opc, i.value.pin_adm].map((v) => v || ''))));
  }
  async function search(page) {
    state.page = page || 0;
    state.query = $('search').value;
    let r;
    try { r = await get('/api/messages?q=' + encodeURIComponent(state.query) + '&page=' + state.page); } catch (e) { return; }
    $('search-count').textContent = r.total + ' messages' + (state.query ? ' match' : '') + '; page ' + (r.page + 1) + ' of ' + Math.max(1, Math.ceil(r.total / r.per_page)) + '.';
    $('messages').replaceChildren(...r.messages.map(message));
    $('prev').disabled = r.page === 0;
    $('next').disabled = (r.page + 1) * r.per_page >= r.total;
  }

  /* Live events */
  function onEvent(e) {
    const ev = JSON.parse(e.data);
    switch (ev.event) {
      case 'advertise': loadPair(); break;
      case 'paired':
        loadDevices().then(() => {
          const d = state.devices.find((x) => x.device === ev.device);
          $('paired').textContent = 'Paired: ' + (d && d.name ? d.name : ev.device) + '.';
        });
        break;
      case 'device-progress': {
        const p = state.progress[ev.device] || (state.progress[ev.device] = { start: Date.now(), updates: 0 });
        p.bytes = ev.bytes_done; p.items = ev.items_done; p.updates++; p.done = false;
        renderPhones(); break;
      }
      case 'snapshot':
        if (state.progress[ev.device]) state.progress[ev.device].done = true;
        loadDevices(); break;
      case 'authenticated': case 'disconnected': case 'instruction': loadDevices(); loadInstructions(); break;
      case 'locked': loadBackup(); break;
      case 'verify-progress': {
        const bar = $('verify-progress');
        bar.hidden = false;
        bar.max = ev.total;
        bar.value = ev.done;
        break;
      }
      case 'open-progress':
        $('open-status').textContent = 'Decrypting the backup: ' + ev.done + ' of ' + ev.total + ' items…';
        break;
    }
  }

  /* Wires the page at once (it is interactive from here), then asks the
   * server for the session's CSRF value and the live data. */
  function start() {
    window.addEventListener('hashchange', show);
    $('pair-new').addEventListener('click', () => post('/api/pair/new').catch(() => {}));
    $('verify').addEventListener('click', async () => {
      $('store-result').textContent = 'Verifying…';
      try { const r = await post('/api/verify'); $('store-result').textContent = r.clean ? 'The store is intact: ' + r.chunks + ' chunks checked.' : r.bad + ' of ' + r.chunks + ' chunks are damaged.'; } catch (e) { $('store-result').textContent = e.message; }
    });
    $('prune').addEventListener('click', async () => {
      if (!confirm('Remove all but the newest ' + $('keep-last').value + ' snapshots of every phone?')) return;
      $('store-result').textContent = 'Pruning…';
      try { const r = await post('/api/prune', { keep_last: Number($('keep-last').value) }); $('store-result').textContent = 'Removed ' + r.snapshots_removed + ' snapshots, freed ' + bytes(r.bytes_freed) + '.'; } catch (e) { $('store-result').textContent = e.message; }
      loadDevices();
    });
    $('instruct-form').addEventListener('submit', instruct);
    $('open-form').addEventListener('submit', open);
    $('search-form').addEventListener('submit', (e) => { e.preventDefault(); search(0); });
    $('prev').addEventListener('click', () => search(state.page - 1));
    $('next').addEventListener('click', () => search(state.page + 1));
    $('reveal').addEventListener('change', loadItems);
    $('lock').addEventListener('click', async () => { await post('/api/lock').catch(() => {}); loadBackup(); });
    setInterval(tick, 1000);
    show();
    document.body.dataset.ready = String(performance.now());
    get('/api/session').then((s) => { state.csrf = s.csrf; });
    const es = new EventSource('/api/events');
    es.onmessage = onEvent;
    loadPair();
  }
  start();
})();
