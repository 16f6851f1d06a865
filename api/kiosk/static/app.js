/* The kiosk touchscreen page: renders GET /kiosk/api/screen and sends the person's choices.
 *
 * Touch only: no text fields, no hover. The server owns the flow and every timeout; this page
 * reflects `state`, keeps itself in sync by long-polling ?since=VERSION, and keeps only
 * local view state (floor tab, keypad query, keys picked, reason sheet open).
 */
'use strict';

(() => {
  const API = '/kiosk/api';
  const MAX_KEYS = 5;
  const SEARCH_LIMIT = 12;
  const TOAST_MS = 7000;

  // Texts for key statuses and local hints (the server's own texts come with `message`
  // and with 409 answers; these mirror kiosk/messages.py for the statuses listed in `keys`).
  const T = {
    approval_required: ['需部门领导审批', 'Approval needed'],
    approval_required_long: ['特殊房间：需部门领导审批', "Special room: a department leader's approval is needed"],
    out: ['已借出', 'Out'],
    key_out: ['钥匙已借出', 'Key is out'],
    mine: ['我借的 · 点此归还', 'Mine: touch to return'],
    cosign: ['需管理员确认', 'Custodian confirms'],
    special: ['特殊房间', 'Special room'],
    other_reason: ['其他事由请到客服中心办理', 'For any other reason, ask at the customer-service desk'],
    too_many: ['一次最多领取五把钥匙', 'At most five keys at a time'],
    cannot: ['不能领取此钥匙', 'This key cannot be drawn'],
    offline: ['无法连接钥匙柜，请稍后再试', 'Cannot reach the cabinet: try again'],
    failed: ['操作未完成', 'The request was not accepted'],
  };
  // Outside idle, the notice bar shows only what needs attention now (a refused tap, "please
  // wait"); the state screens already say their own prompt, and an ended visit's message
  // (drawn, cancelled…) belongs to the idle screen.
  const NOTICE_CODES = new Set(['busy']);
  const WEEKDAY_ZH = '日一二三四五六';
  const WEEKDAY_EN = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const MONTH_EN = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

  const $ = (id) => document.getElementById(id);

  let snap = null;          // the last screen snapshot
  let snapAt = 0;           // performance.now() when it arrived
  let known = null;         // its version
  let busy = false;         // a POST is in flight
  let toastTimer = 0;
  let noticeDismissed = null;  // a message not to show in the notice bar (stale or touched away)
  const messageId = (msg) => (msg ? `${msg.code}|${msg.zh}` : null);
  const ui = { mode: 'floors', floor: null, query: '', selected: [], sheet: false };

  // ------------------------------------------------------------------ DOM helpers
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'dataset') Object.assign(node.dataset, v);
      else if (k === 'onclick') node.addEventListener('click', v);
      else node.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  const zh = (text, cls) => el('span', { class: 'zh' + (cls ? ' ' + cls : '') }, text);
  const en = (text, cls) => el('span', { class: 'en' + (cls ? ' ' + cls : '') }, text);
  const pair = (t, cls) => [zh(t[0], cls), en(t[1], cls)];
  const show = (node, on) => { node.hidden = !on; };

  // --------------------------------------------------------------------- network
  async function getScreen(since) {
    const url = since === null ? `${API}/screen` : `${API}/screen?since=${since}`;
    const r = await fetch(url, { cache: 'no-store', signal: AbortSignal.timeout(20000) });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    return r.json();
  }

  async function pollLoop() {
    let backoff = 0;
    for (;;) {
      try {
        let data = await getScreen(known);
        if (known !== null && data.version < known) {
          // Either an answer overtaken by a POST's answer, or the daemon restarted (its
          // version starts again): ask once more without `since` and take that as the truth.
          data = await getScreen(null);
          known = null;
        }
        backoff = 0;
        show($('conn'), false);
        apply(data);
      } catch (err) {
        known = null;  // after an outage, accept whatever the (maybe restarted) daemon says
        show($('conn'), true);
        backoff = Math.min(backoff ? backoff * 2 : 500, 8000);
        await new Promise((res) => setTimeout(res, backoff));
      }
    }
  }

  async function post(path, body) {
    if (busy) return false;
    busy = true;
    document.body.classList.add('busy');
    try {
      const r = await fetch(`${API}/${path}`, {
        method: 'POST', cache: 'no-store',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body || {}),
      });
      let data = null;
      try { data = await r.json(); } catch (_) { data = null; }
      if (r.ok && data) {
        apply(data);
        return true;
      }
      if (r.status === 409 && data && data.zh) {
        noticeDismissed = messageId({ code: data.code, zh: data.zh });  // the toast says it
        showToast(data.zh, data.en, data.detail && data.detail !== data.code ? data.detail : '');
      } else {
        showToast(T.failed[0], `${T.failed[1]} (HTTP ${r.status})`, '');
      }
    } catch (_) {
      showToast(T.offline[0], T.offline[1], '');
    } finally {
      busy = false;
      document.body.classList.remove('busy');
    }
    return false;
  }

  // ------------------------------------------------------------------ state sync
  function apply(data) {
    if (known !== null && data.version < known) return;
    const prev = snap;
    snap = data;
    known = data.version;
    snapAt = performance.now();
    if (!prev || prev.state !== data.state || prev.person !== data.person) {
      resetUi();
      // A message older than this screen (the last visit's refusal, still within its few
      // seconds) is not this person's business: the notice bar shows only newer ones.
      noticeDismissed = messageId(data.message);
    }
    render();
  }

  function resetUi() {
    ui.mode = 'floors';
    ui.floor = null;
    ui.query = '';
    ui.selected = [];
    ui.sheet = false;
  }

  function secondsLeft() {
    if (!snap || snap.seconds_left === null || snap.seconds_left === undefined) return null;
    return Math.max(0, Math.ceil(snap.seconds_left - (performance.now() - snapAt) / 1000));
  }

  // ---------------------------------------------------------------------- render
  const SCREEN_OF = {
    idle: 's-idle', await_manager: 's-await_manager', choosing: 's-choosing',
    await_cosign: 's-await_cosign', releasing: 's-slots', returning: 's-slots', intake: 's-slots',
  };

  function render() {
    const state = snap.state;
    $('app').dataset.state = state;
    const target = SCREEN_OF[state] || 's-idle';
    for (const s of document.querySelectorAll('.screen')) s.classList.toggle('active', s.id === target);
    renderBar();
    renderNotice();
    if (state === 'idle') renderIdle();
    else if (state === 'await_manager') renderManager();
    else if (state === 'choosing') renderChoosing();
    else if (state === 'await_cosign') renderCosign();
    else renderSlots();
    tick();
  }

  function renderBar() {
    const state = snap.state;
    const person = $('bar-person');
    const prompt = $('bar-prompt');
    person.replaceChildren();
    if (snap.person) {
      person.append(el('b', { id: 'person-name' }, snap.person));
      if (snap.manager) person.append(el('span', { class: 'bar-manager' }, zh('值班经理'), ' ', en('On-duty manager'), ' ', el('b', {}, snap.manager)));
    }
    const prompts = {
      idle: ['钥匙柜', 'Key cabinet'],
      await_manager: ['等待值班经理刷卡', 'Waiting for the on-duty manager'],
      choosing: ['请选择钥匙和事由', 'Choose the key and the reason'],
      await_cosign: ['等待钥匙管理员确认', 'Waiting for a key custodian'],
      releasing: ['领取钥匙', 'Draw a key'],
      returning: ['归还钥匙', 'Return a key'],
      intake: ['登记钥匙', 'Register a key'],
    };
    prompt.replaceChildren(...pair(prompts[state] || prompts.idle));
    show($('cancel'), state !== 'idle');
    show($('countdown'), state !== 'idle' && snap.seconds_left !== null);
  }

  function messageBox(node, msg) {
    node.className = `message level-${msg.level}`;
    node.dataset.code = msg.code;
    node.replaceChildren(el('div', { class: 'message-zh' }, msg.zh), el('div', { class: 'message-en' }, msg.en));
    show(node, true);
  }

  function renderNotice() {
    const msg = snap.message;
    const node = $('notice');
    const wanted = snap.state !== 'idle' && msg && (msg.level === 'error' || NOTICE_CODES.has(msg.code));
    if (wanted && messageId(msg) !== noticeDismissed) messageBox(node, msg);
    else show(node, false);
    node.classList.add('notice');
  }

  function renderIdle() {
    const box = $('idle-message');
    if (snap.message) messageBox(box, snap.message);
    else show(box, false);
  }

  function renderManager() {
    const sub = $('manager-sub');
    sub.replaceChildren(el('b', {}, snap.person || ''), ' ', zh('已刷卡'), ' ', en('has tapped — two people open together'));
  }

  function slotKeyText(slot) {
    const k = (snap.slot_keys || {})[String(slot)];
    if (k) return k;
    const fromList = (snap.keys || []).find((x) => x.slot === slot);
    return fromList ? { key_number: fromList.key_number, label: fromList.label } : null;
  }

  function renderCosign() {
    const box = $('cosign-keys');
    box.replaceChildren();
    for (const slot of snap.open_slots || []) {
      const k = slotKeyText(slot);
      if (k) box.append(el('span', { class: 'chip' }, k.label, ' ', el('small', {}, k.key_number)));
    }
  }

  function renderSlots() {
    const state = snap.state;
    const words = {
      releasing: ['请从亮灯的格口取出钥匙', 'Take the key from the lit slot'],
      returning: ['请将钥匙放回亮灯的格口', 'Put the key back into the lit slot'],
      intake: ['请将新钥匙放入亮灯的格口', 'Hang the new key in the lit slot'],
    }[state] || ['', ''];
    $('slot-zh').textContent = words[0];
    $('slot-en').textContent = words[1];
    const tiles = $('slot-tiles');
    tiles.replaceChildren();
    for (const slot of snap.open_slots || []) {
      const k = slotKeyText(slot);
      tiles.append(el('div', { class: 'slot-tile', dataset: { slot: String(slot) } },
        el('div', { class: 'slot-caption' }, zh('格口'), ' ', en('Slot')),
        el('div', { class: 'slot-no' }, String(slot)),
        k ? el('div', { class: 'slot-key' }, k.label, ' ', el('small', {}, k.key_number)) : null));
    }
  }

  // ------------------------------------------------------------------ choosing
  const floorKey = (k) => (k.floor === null || k.floor === undefined ? 'other' : String(k.floor));
  const floorName = (f) => {
    if (f === 'other') return null;
    const n = Number(f);
    return n < 0 ? `B${-n}` : `${n}F`;
  };

  function floorsOf(keys) {
    const set = new Set(keys.map(floorKey));
    const numeric = [...set].filter((f) => f !== 'other').map(Number).sort((a, b) => a - b).map(String);
    return set.has('other') ? [...numeric, 'other'] : numeric;
  }

  // The floor a person last drew from, remembered on this kiosk: a trained user who works the
  // same floors finds the list already showing it (one touch fewer).
  function lastFloor(person) {
    try { return person ? localStorage.getItem(`kiosk.floor.${person}`) : null; } catch (_) { return null; }
  }

  function rememberFloor(person, floor) {
    try { if (person && floor) localStorage.setItem(`kiosk.floor.${person}`, floor); } catch (_) { /* private mode */ }
  }

  function isMine(key) {
    return (snap.my_loans || []).some((l) => l.key_number === key.key_number);
  }

  function searchKeys(keys, q) {
    const Q = q.toUpperCase();
    const scored = [];
    for (const k of keys) {
      const num = k.key_number.toUpperCase();
      const label = (k.label || '').toUpperCase();
      let score = -1;
      if (label.startsWith(Q) || num === `U${Q}` || num.endsWith(`-${Q}`)) score = 0;
      else if (num.includes(Q) || label.includes(Q)) score = 1;
      if (score >= 0) scored.push([score, k]);
    }
    scored.sort((a, b) => a[0] - b[0]);
    return scored.slice(0, SEARCH_LIMIT).map((x) => x[1]);
  }

  function renderChoosing() {
    const keys = snap.keys || [];
    const floors = floorsOf(keys);
    if (ui.floor === null || !floors.includes(ui.floor)) {
      const usual = lastFloor(snap.person);
      ui.floor = floors.includes(usual) ? usual : floors[0] || null;
    }

    // left: floor tabs or keypad
    $('mode-floors').classList.toggle('on', ui.mode === 'floors');
    $('mode-search').classList.toggle('on', ui.mode === 'search');
    show($('floor-grid'), ui.mode === 'floors');
    show($('keypad'), ui.mode === 'search');
    const grid = $('floor-grid');
    const rows = 6;
    grid.style.setProperty('--cols', String(Math.max(5, Math.ceil((floors.length || 1) / rows))));
    grid.replaceChildren(...floors.map((f) => el('button', {
      class: 'btn floor' + (f === ui.floor ? ' on' : '') + (f === 'other' ? ' floor-other' : ''),
      type: 'button', dataset: { floor: f },
      onclick: () => { ui.floor = f; ui.mode = 'floors'; render(); },
    }, f === 'other' ? zh('其他') : floorName(f), f === 'other' ? en('Other') : null)));
    $('keypad-display').replaceChildren(
      ui.query ? el('b', {}, ui.query) : el('span', { class: 'placeholder' }, zh('输入房号'), ' ', en('type the room no.')));

    // right: my loans, heading, keys
    renderMyLoans();
    let shown;
    const heading = $('key-heading');
    if (ui.mode === 'search') {
      shown = ui.query ? searchKeys(keys, ui.query) : [];
      heading.replaceChildren(zh('搜索结果'), ' ', en('Search results'),
        ui.query ? el('b', { class: 'heading-q' }, ui.query) : el('span', { class: 'heading-hint' }, zh(' ← 用左侧键盘输入房号'), ' ', en('use the keypad')));
    } else {
      shown = keys.filter((k) => floorKey(k) === ui.floor);
      const name = ui.floor === 'other' ? null : floorName(ui.floor);
      heading.replaceChildren(name ? el('b', {}, name) : zh('其他钥匙'), ' ', zh(`${shown.length} 把`), ' ', en(`${shown.length} keys`));
    }
    if (ui.mode === 'search' && ui.query && !shown.length) {
      $('key-grid').replaceChildren(el('div', { class: 'empty' }, zh('没有找到钥匙'), en('No key matches')));
    } else {
      $('key-grid').replaceChildren(...shown.map(keyButton));
    }

    // multi-key selection bar and the reason sheet
    const sel = ui.selected;
    show($('selection-bar'), sel.length > 0 && !ui.sheet);
    $('selection-text').replaceChildren(zh(`已选 ${sel.length} 把`), ' ', en(`${sel.length} selected:`), ' ',
      el('b', {}, sel.map((k) => k.label).join('、')));
    show($('reason-sheet'), ui.sheet && sel.length > 0);
    if (ui.sheet) renderSheet();
  }

  function renderMyLoans() {
    const box = $('my-loans');
    const loans = snap.my_loans || [];
    show(box, loans.length > 0);
    if (!loans.length) return;
    box.replaceChildren(el('div', { class: 'my-loans-title' }, zh('我借的'), en('My keys out')),
      ...loans.slice(0, 3).map((l) => el('button', {
        class: 'btn btn-return', type: 'button', dataset: { return: l.key_number },
        onclick: () => post('return', { key_number: l.key_number }),
      }, el('span', { class: 'zh' }, '归还 ', el('b', {}, l.label)),
      en(`Return ${l.key_number} · due ${dueText(l.due_at)}`))));
    if (loans.length > 3) box.append(el('span', { class: 'more' }, `+${loans.length - 3}`));
  }

  function dueText(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return '';
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getMonth() + 1}/${d.getDate()} ${p(d.getHours())}:${p(d.getMinutes())}`;
  }

  function keyButton(k) {
    const mine = k.status === 'out' && isMine(k);
    const drawable = k.status === 'ok';
    const picked = ui.selected.some((s) => s.key_number === k.key_number);
    let tag = null;
    if (k.status === 'approval_required') tag = pair(T.approval_required);
    else if (mine) tag = pair(T.mine);
    else if (k.status === 'out') tag = pair(T.out);
    else if (!drawable) tag = pair(T.cannot);
    else if (k.cosign) tag = pair(T.cosign);
    else if (k.special) tag = pair(T.special);
    const cls = ['btn', 'key', `status-${drawable ? 'ok' : k.status}`];
    if (mine) cls.push('mine');
    if (picked) cls.push('picked');
    if (!drawable && !mine) cls.push('unavailable');
    return el('button', {
      class: cls.join(' '), type: 'button',
      dataset: { key: k.key_number, status: k.status },
      'aria-disabled': drawable || mine ? 'false' : 'true',
      onclick: () => touchKey(k, mine),
    },
    ...labelParts(k.label),
    el('span', { class: 'key-meta' }, k.key_number, k.slot ? ` · 格口 ${k.slot}` : ''),
    tag ? el('span', { class: 'key-tag' }, ...tag) : null);
  }

  // Labels carry both languages ("高压配电房 HV power room"): Chinese large, English below.
  function labelParts(label) {
    const m = /^(.*[\u3400-\u9fff\uff00-\uffef][^\s]*)\s+([A-Za-z].*)$/.exec(label || '');
    if (!m) return [el('span', { class: 'key-label' }, label || '')];
    return [el('span', { class: 'key-label' }, m[1]), el('span', { class: 'key-label-en' }, m[2])];
  }

  function touchKey(k, mine) {
    if (mine) { post('return', { key_number: k.key_number }); return; }
    if (k.status === 'approval_required') { showToast(...T.approval_required_long, '', 'info'); return; }
    if (k.status === 'out') { showToast(...T.key_out, '', 'info'); return; }
    if (k.status !== 'ok') { showToast(...T.cannot, '', 'info'); return; }
    const i = ui.selected.findIndex((s) => s.key_number === k.key_number);
    if (ui.selected.length === 0) {
      ui.selected = [k];
      ui.sheet = true;          // one key: straight to the reasons
    } else if (i >= 0) {
      ui.selected.splice(i, 1);  // adding more keys: touching a picked one drops it
    } else if (ui.selected.length >= MAX_KEYS) {
      showToast(...T.too_many, '', 'info');
      return;
    } else {
      ui.selected.push(k);
    }
    render();
  }

  function renderSheet() {
    $('sheet-keys').textContent = ui.selected.map((k) => `${k.label}（${k.key_number}）`).join('、');
    show($('sheet-add'), ui.selected.length < MAX_KEYS);
    const grid = $('reason-grid');
    grid.replaceChildren(...(snap.reasons || []).map((r) => {
      const other = r.code === 'other';
      return el('button', {
        class: 'btn reason' + (other ? ' reason-other' : ''), type: 'button',
        dataset: { reason: r.code }, 'aria-disabled': other ? 'true' : 'false',
        onclick: () => chooseReason(r),
      }, el('span', { class: 'zh' }, r.zh), en(r.en),
      other ? el('small', { class: 'reason-note' }, '请到客服中心 ask at the desk') : null);
    }));
  }

  function chooseReason(r) {
    if (r.code === 'other') { showToast(...T.other_reason, '', 'info'); return; }
    const keys = ui.selected.map((k) => k.key_number);
    const person = snap.person;
    const floor = floorKey(ui.selected[ui.selected.length - 1]);
    ui.sheet = false;
    ui.selected = [];
    post('draw', { keys, reason_code: r.code, reason_text: null }).then((ok) => {
      if (ok) rememberFloor(person, floor);
      else if (snap) render();
    });
  }

  // --------------------------------------------------------------------- keypad
  function buildKeypad() {
    const pad = $('keypad');
    const keys = [
      ['1'], ['2'], ['3'], ['B'],
      ['4'], ['5'], ['6'], ['F'],
      ['7'], ['8'], ['9'], ['⌫', 'back'],
      ['0', null, 'wide'], ['清除 Clear', 'clear', 'wide'],
    ];
    for (const [label, action, wide] of keys) {
      pad.append(el('button', {
        class: 'btn pad' + (wide ? ' pad-wide' : ''), type: 'button', dataset: { pad: action || label },
        onclick: () => {
          if (action === 'back') ui.query = ui.query.slice(0, -1);
          else if (action === 'clear') ui.query = '';
          else if (ui.query.length < 8) ui.query += label;
          render();
        },
      }, label));
    }
  }

  // ---------------------------------------------------------------------- toast
  function showToast(zhText, enText, detail, level) {
    const t = $('toast');
    t.className = `toast level-${level || 'error'}`;
    $('toast-zh').textContent = zhText;
    $('toast-en').textContent = enText;
    $('toast-detail').textContent = detail || '';
    show(t, true);
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => show(t, false), TOAST_MS);
  }

  // ----------------------------------------------------------------------- ticks
  function tick() {
    const now = new Date();
    const p = (n) => String(n).padStart(2, '0');
    $('clock-time').textContent = `${p(now.getHours())}:${p(now.getMinutes())}`;
    $('clock-date').replaceChildren(
      zh(`${now.getMonth() + 1}月${now.getDate()}日 星期${WEEKDAY_ZH[now.getDay()]}`),
      en(`${WEEKDAY_EN[now.getDay()]} ${now.getDate()} ${MONTH_EN[now.getMonth()]} ${now.getFullYear()}`));
    const left = secondsLeft();
    const s = left === null ? '' : String(left);
    for (const id of ['countdown-s', 'manager-count', 'cosign-count', 'slot-count']) $(id).textContent = s;
    $('app').classList.toggle('hurry', left !== null && left <= 10);
  }

  // ---------------------------------------------------------------------- wiring
  function init() {
    buildKeypad();
    $('cancel').addEventListener('click', () => { resetUi(); post('cancel'); });
    $('mode-floors').addEventListener('click', () => { ui.mode = 'floors'; render(); });
    $('mode-search').addEventListener('click', () => { ui.mode = 'search'; render(); });
    $('sheet-back').addEventListener('click', () => { ui.sheet = false; ui.selected = []; render(); });
    $('sheet-add').addEventListener('click', () => { ui.sheet = false; render(); });
    $('selection-clear').addEventListener('click', () => { ui.selected = []; render(); });
    $('selection-go').addEventListener('click', () => { ui.sheet = true; render(); });
    $('toast').addEventListener('click', () => show($('toast'), false));
    $('notice').addEventListener('click', () => {
      noticeDismissed = messageId(snap && snap.message);
      show($('notice'), false);
    });
    document.addEventListener('contextmenu', (e) => e.preventDefault());
    setInterval(() => { if (snap) tick(); }, 250);
    tick();
    pollLoop();
  }

  document.addEventListener('DOMContentLoaded', init);
})();
