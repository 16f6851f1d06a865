/* The kiosk touchscreen page: renders GET /kiosk/api/screen and sends the person's choices.
 *
 * Touch only: no text fields, no hover. The server owns the flow and every timeout; this page
 * reflects `state`, keeps itself in sync by long-polling ?since=VERSION, and keeps only
 * local view state (floor tab, keypad query, keys picked, reason sheet open, the custodian's
 * intake form). Text is typed on the page's own keypad and Latin keyboard, never the system's.
 */
'use strict';

(() => {
  const API = '/kiosk/api';
  const MAX_KEYS = 5;
  const SEARCH_LIMIT = 12;
  const TOAST_MS = 7000;
  const REASON_TEXT_MAX = 200;   // DrawRequest.reason_text
  const NAME_MAX = 40;           // a deliverer's name in pinyin (IntakeRequest allows 100)

  // K1 intake: the key types a custodian registers at the screen. Each sets the key number's
  // prefix, the key group and category, and how the label is written (the demo data's style).
  const INTAKE_TYPES = [
    { code: 'unit', zh: '单元', en: 'Unit', prefix: 'U', group: 'UNIT', category: 'unit',
      label: (room) => `${room} 室` },
    { code: 'vacant', zh: '空置房', en: 'Vacant', prefix: 'U', group: 'VACANT', category: 'unit',
      label: (room) => `${room} 室 (空置)` },
    { code: 'public', zh: '公共区域', en: 'Public', prefix: 'P-', group: 'PUBLIC', category: 'public_area',
      label: (room) => `公共区域 ${room} Public area` },
    { code: 'equip', zh: '设备房', en: 'Equipment', prefix: 'E-', group: 'EQUIP', category: 'equipment',
      label: (room) => `设备房 ${room} Equipment room` },
  ];
  const INTAKE_COUNTS = [1, 2, 3, 4, 5, 6, 7, 8, 9];
  // The deliverer's department as preset buttons; the Chinese name is what is recorded.
  const DEPARTMENTS = [
    ['业主', 'Owner'], ['租户', 'Tenant'], ['装修公司', 'Contractor'], ['工程部', 'Engineering'],
    ['保洁部', 'Cleaning'], ['安保部', 'Security'], ['其他', 'Other'],
  ];

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
    other_text: ['请先输入事由', 'Type the reason first'],
    room_first: ['请输入房号', 'Type the room number first'],
    dept_first: ['请选择送交人部门', "Choose the deliverer's department first"],
    name_first: ['请输入送交人姓名（拼音）', "Type the deliverer's name (pinyin) first"],
    confirm_first: ['请送交人确认后再登记', 'The deliverer must confirm first (K1)'],
    intake_incomplete: ['登记信息不完整', 'The intake record is incomplete'],
    too_many: ['一次最多领取五把钥匙', 'At most five keys at a time'],
    cannot: ['不能领取此钥匙', 'This key cannot be drawn'],
    offline: ['无法连接钥匙柜，请稍后再试', 'Cannot reach the cabinet: try again'],
    pin_mismatch: ['两次输入的 PIN 不一致', 'The two PINs do not match'],
    pin_short: ['PIN 须为 4 至 8 位数字', 'A PIN has 4 to 8 digits'],
    pin_not_set: ['您还没有 PIN：请找钥匙管理员重置后设置', 'You have no PIN: ask a key custodian to reset it, then set one'],
    failed: ['操作未完成', 'The request was not accepted'],
  };
  // Outside idle, the notice bar shows only what needs attention now (a refused tap, "please
  // wait"); the state screens already say their own prompt, and an ended visit's message
  // (drawn, cancelled…) belongs to the idle screen.
  const NOTICE_CODES = new Set(['busy', 'fob_paired', 'approval_requested', 'approval_pending', 'pin_set', 'pin_changed']);  // K7: the screen says so
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
  const ui = { mode: 'floors', floor: null, query: '', selected: [], sheet: false, other: false, intake: null, handover: false, returning: null, pin: null };
  const RETURN_SLOTS_SHOWN = 13;  // with the key's own slot (two cells): three rows of five
  let pinValue = '';        // the digits on the PIN pad (never kept past one entry)
  const PIN_MIN = 4;
  const PIN_MAX = 8;
  let nameKb = null;        // the on-screen keyboards (built once in init)
  let otherKb = null;

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

  async function post(path, body, onOk = apply) {
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
        onOk(data);
        return true;
      }
      if ((r.status === 409 || r.status === 422) && data && data.zh) {  // 422: which field, in words
        noticeDismissed = messageId({ code: data.code, zh: data.zh });  // the toast says it
        // A code the server has no words for comes back as itself: say it with ours if we can.
        const [z, e] = data.zh === data.code && T[data.code] ? T[data.code] : [data.zh, data.en];
        showToast(z, e, data.detail && data.detail !== data.code ? data.detail : '');
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
    ui.other = false;
    ui.intake = null;
    ui.handover = false;
    ui.returning = null;
    ui.pin = null;
    pinValue = '';
    if (otherKb) otherKb.reset();
    if (nameKb) nameKb.reset();
  }

  function secondsLeft() {
    if (!snap || snap.seconds_left === null || snap.seconds_left === undefined) return null;
    return Math.max(0, Math.ceil(snap.seconds_left - (performance.now() - snapAt) / 1000));
  }

  // ---------------------------------------------------------------------- render
  const SCREEN_OF = {
    idle: 's-idle', await_manager: 's-await_manager', choosing: 's-choosing',
    await_cosign: 's-await_cosign', await_incoming: 's-await_incoming', await_returner: 's-await_returner', releasing: 's-slots', returning: 's-slots', intake: 's-slots',
    stocking: 's-stock',
  };

  function render() {
    const state = snap.state;
    $('app').dataset.state = state;
    // The intake form is the page's own view over the server's "choosing" state.
    const target = intakeOpen() ? 's-intake' : SCREEN_OF[state] || 's-idle';
    for (const s of document.querySelectorAll('.screen')) s.classList.toggle('active', s.id === target);
    renderBar();
    renderNotice();
    if (state !== 'idle') clearIdle();
    if (state === 'idle') renderIdle();
    else if (state === 'await_manager') renderManager();
    else if (intakeOpen()) renderIntake();
    else if (state === 'choosing') renderChoosing();
    else if (state === 'await_cosign') renderCosign();
    else if (state === 'await_incoming') renderHandoverSummary($('incoming-summary'));
    else if (state === 'await_returner') renderReturner();
    else if (state === 'stocking') renderStock();
    else renderSlots();
    renderHandoverSheet();
    renderReturnSheet();
    renderPin();
    renderAlarms();
    show($('sim-mark'), snap.simulated === true);
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
      await_incoming: ['交接班', 'Shift handover'],
      await_returner: ['归还钥匙', 'Return a key'],
      releasing: ['领取钥匙', 'Draw a key'],
      returning: ['归还钥匙', 'Return a key'],
      intake: ['登记钥匙', 'Register a key'],
      stocking: ['上架钥匙', 'Stocking the cabinet'],
    };
    const said = intakeOpen() ? prompts.intake : pinAsked() ? ['请输入 PIN', 'Enter your PIN'] : prompts[state] || prompts.idle;
    prompt.replaceChildren(...pair(said));
    show($('intake-open'), state === 'choosing' && snap.custodian === true && !ui.intake);
    // K1/K2: keys on record that never hung in the cabinet; only a custodian is told
    const awaiting = state === 'choosing' && !ui.intake && snap.stock ? snap.stock.awaiting || 0 : 0;
    $('stock-awaiting').textContent = String(awaiting);
    show($('stock-open'), awaiting > 0);
    renderHandoverButton();
    show($('cancel'), state !== 'idle');
    show($('countdown'), state !== 'idle' && snap.seconds_left !== null);
    renderHubLink();
  }

  // Issue 12: a cabinet in a fleet tells a keeper since when its hub has not answered (the
  // cabinet still decides every tap alone; what it did goes up when the hub is back).
  function renderHubLink() {
    const hub = snap.hub;
    const node = $('hub-offline');
    const since = snap.keeper && hub && hub.online === false ? hub.offline_since_local : null;
    show(node, Boolean(since));
    // The bar is full for a keeper (register, handover, countdown, cancel): the chip takes
    // the prompt's place, which only repeats what the screen below shows.
    show($('bar-prompt'), !since);
    if (since) node.replaceChildren(zh(`离线 自 ${since}`), en(`offline since ${since}`));
  }

  function messageBox(node, msg) {
    node.className = `message level-${msg.level}`;
    node.dataset.code = msg.code;
    node.replaceChildren(el('div', { class: 'message-zh' }, msg.zh), el('div', { class: 'message-en' }, msg.en),
      // what exactly happened: which key, which slot, due when (or which compartment to shut)
      msg.detail_zh ? el('div', { class: 'message-detail-zh' }, msg.detail_zh) : null,
      msg.detail_en ? el('div', { class: 'message-detail-en' }, msg.detail_en) : null);
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

  // F1: the open alarms, on the idle screen for everyone; a keeper who tapped in sees
  // 确认报警 and acknowledges them (the event names the keeper)
  function alarmLine(a) {
    return `${a.zh}${a.slot ? ` · 格口 ${a.slot}` : ''} · ${a.at}`;
  }

  function renderAlarms() {
    const alarms = snap.alarms || [];
    const banner = $('idle-alarms');
    show(banner, snap.state === 'idle' && alarms.length > 0);
    if (alarms.length) {
      banner.replaceChildren(
        el('div', { class: 'alarm-title' }, zh(`报警 ${alarms.length} 条：请管理人员刷卡确认`), ' ',
          en(`${alarms.length} alarm(s): a keeper taps a badge to acknowledge`)),
        ...alarms.slice(0, 3).map((a) => el('div', { class: 'alarm-line', dataset: { kind: a.kind } },
          zh(alarmLine(a)), ' ', en(a.en))));
    }
    const ack = $('alarm-ack');
    show(ack, snap.state === 'choosing' && snap.keeper && alarms.length > 0 && !ui.sheet && !ui.returning);
    ack.replaceChildren(zh(`确认报警（${alarms.length}）`), en('Acknowledge the alarms'));
  }

  function renderIdle() {
    const box = $('idle-message');
    if (snap.message) messageBox(box, snap.message);
    else show(box, false);
    const after = $('idle-after-hours');
    if (snap.after_hours) {
      after.replaceChildren(
        el('div', {}, zh('非工作时间', 'after-hours-title'), ' ', en('After hours')),
        el('div', {}, zh('领取钥匙需值班经理一同刷卡'), ' ', en('A draw needs the on-duty manager to tap too (K8)')),
        rosteredLine());
    }
    show(after, snap.after_hours === true);
  }

  // K8: whom to call — the duty manager on the roster now, with their phone if recorded.
  function rosteredLine() {
    const m = snap.duty_manager;
    if (!m) return el('div', { class: 'rostered rostered-none' }, zh('值班表上现在没有值班经理'), ' ', en('No duty manager on the roster now'));
    return el('div', { class: 'rostered' }, zh('当班值班经理'), ' ', en('On duty:'), ' ',
      el('b', { id: 'rostered-name' }, m.name),
      m.phone ? el('span', { id: 'rostered-phone', class: 'rostered-phone' }, ' ☎ ', m.phone) : null);
  }

  // Off the idle screen its last message is emptied, not just hidden: the next idle screen
  // shows only what the server says then (no stale "drawn" from the visit before).
  function clearIdle() {
    const box = $('idle-message');
    show(box, false);
    delete box.dataset.code;
    box.replaceChildren();
  }

  function renderManager() {
    const sub = $('manager-sub');
    sub.replaceChildren(el('b', {}, snap.person || ''), ' ', zh('已刷卡'), ' ', en('has tapped — two people open together'));
    $('manager-rostered').replaceChildren(rosteredLine());
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

  // ------------------------------------------------------------------ handover (H1)
  function renderHandoverButton() {
    const h = snap.handover;
    const btn = $('handover-open');
    const waiting = h && h.waiting;
    const signedIn = snap.state === 'choosing' || snap.state === 'await_manager';
    const visible = signedIn && !ui.intake && h && (h.can_start || (waiting && waiting.can_accept));
    show(btn, !!visible);
    if (!visible) return;
    btn.dataset.action = h.can_start ? 'start' : 'accept';
    btn.replaceChildren(...(h.can_start
      ? [zh('⇄ 交接班'), en('Shift handover')]
      : [zh(`⇄ 接班 ${waiting.outgoing}`), en('Accept handover')]));
  }

  // The frozen handover report in a few lines: what is handed over and the counts (三清三明).
  function renderHandoverSummary(box) {
    const w = snap.handover && snap.handover.waiting;
    box.replaceChildren();
    if (!w) return;
    const chip = (zhText, enText, value, warn) => el('span', { class: 'chip' + (warn ? ' chip-warn' : '') },
      zh(zhText), ' ', en(enText), ' ', el('b', {}, String(value)));
    const sensed = w.sensed_in === null ? '—' : w.sensed_in;
    box.append(
      el('div', { class: 'handover-row' },
        chip('交班人', 'Outgoing', w.outgoing),
        chip('本班领取', 'Drawn', w.drawn), chip('本班归还', 'Returned', w.returned)),
      el('div', { class: 'handover-row' },
        chip('借出未还', 'Keys out', w.keys_out, w.keys_out > 0),
        chip('逾期', 'Overdue', w.overdue, w.overdue > 0),
        chip('未关闭告警', 'Open alarms', w.open_alarms, w.open_alarms > 0)),
      el('div', { class: 'handover-row' },
        chip('钥匙总数', 'Keys', w.keys_total), chip('记录在柜', 'In by records', w.expected_in),
        chip('传感器在柜', 'In by sensors', sensed), chip('点数差异', 'Mismatches', w.mismatches, w.mismatches > 0)));
    // issue 13: what "in the cabinet" was checked by, so the keeper knows what they sign for
    if (w.compared === 'identity') {
      box.append(el('div', { class: 'handover-row handover-mode', dataset: { compared: 'identity' } },
        chip('钥匙身份核对 · 已识别', 'Key identity: identified', w.identified),
        chip('仅感应有钥匙', 'Present only', w.present_only, w.present_only > 0)));
    } else if (w.compared === 'presence') {
      box.append(el('div', { class: 'handover-row handover-mode', dataset: { compared: 'presence' } },
        el('span', { class: 'chip chip-warn' }, zh('本柜仅感应有无，不能分辨钥匙'), ' ', en('Presence only: keys are not identified'))));
    }
    if (w.key_list.length) box.append(el('div', { class: 'handover-keys' }, zh('借出：'), en('Out:'), ' ', w.key_list.join('、')));
  }

  function renderHandoverSheet() {
    const w = snap.handover && snap.handover.waiting;
    const open = ui.handover && (snap.state === 'choosing' || snap.state === 'await_manager') && w && w.can_accept;
    show($('handover-sheet'), !!open);
    if (!open) return;
    $('handover-from').textContent = w.outgoing;
    renderHandoverSummary($('handover-summary'));
  }

  function handoverPressed() {
    if ($('handover-open').dataset.action === 'start') post('handover/start', {});
    else { ui.handover = true; render(); }
  }

  function renderReturner() {
    const box = $('returner-key');
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

  // ------------------------------------------------- return anywhere (issue 13)
  // A key whose group may go back to any free slot (identity cabinets: the slot reads which
  // key is hung, so the cabinet knows where it went) asks where; any other key's own slot
  // opens at once.
  function myLoan(keyNumber) {
    return (snap.my_loans || []).find((l) => l.key_number === keyNumber) || null;
  }

  function startReturn(keyNumber) {
    const loan = myLoan(keyNumber);
    if (loan && loan.anywhere && (snap.free_slots || []).length) {
      ui.returning = keyNumber;
      render();
      return;
    }
    post('return', { key_number: keyNumber });
  }

  // The free slots nearest the key's own slot, in number order (the person finds them).
  function nearestFree(home) {
    const free = (snap.free_slots || []).filter((n) => n !== home);
    const near = free.map((n) => [Math.abs(n - (home || 0)), n]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    return near.slice(0, RETURN_SLOTS_SHOWN).map((x) => x[1]).sort((a, b) => a - b);
  }

  function renderReturnSheet() {
    const loan = ui.returning && snap.state === 'choosing' ? myLoan(ui.returning) : null;
    show($('return-sheet'), !!loan);
    if (!loan) return;
    $('return-key').textContent = `${loan.label}（${loan.key_number}）`;
    const send = (slot) => () => {
      ui.returning = null;
      post('return', slot === loan.home_slot ? { key_number: loan.key_number } : { key_number: loan.key_number, slot })
        .then((ok) => { if (!ok && snap) render(); });
    };
    const buttons = [];
    if (loan.home_slot) {
      buttons.push(el('button', {
        class: 'btn btn-primary return-home', type: 'button', dataset: { returnSlot: String(loan.home_slot) },
        onclick: send(loan.home_slot),
      }, el('span', { class: 'zh' }, `原格口 ${loan.home_slot}`), en(`Its own slot ${loan.home_slot}`)));
    }
    for (const n of nearestFree(loan.home_slot)) {
      buttons.push(el('button', {
        class: 'btn return-free', type: 'button', dataset: { returnSlot: String(n) }, onclick: send(n),
      }, el('span', { class: 'zh' }, `空格口 ${n}`), en(`Free slot ${n}`)));
    }
    $('return-slots').replaceChildren(...buttons);
  }

  // ------------------------------------------------------------ stocking (K1/K2)
  const STOCK_TILES = 8;  // two rows on the 7" screen; the rest are counted below them

  function renderStock() {
    const st = snap.stock || { keys: [], done: 0, total: 0 };
    $('stock-progress').replaceChildren(zh(`已上架 ${st.done} / ${st.total}`), ' ', en(`${st.done} of ${st.total} stocked`));
    const waiting = st.keys.filter((k) => !k.done);
    const shown = [...waiting, ...st.keys.filter((k) => k.done)].slice(0, STOCK_TILES);
    const tiles = $('stock-tiles');
    tiles.replaceChildren(...shown.map((k) => el('div', {
      class: k.done ? 'stock-tile done' : 'stock-tile', dataset: { slot: String(k.slot), key: k.key_number },
    },
    el('div', { class: 'slot-no' }, String(k.slot)),
    el('div', { class: 'stock-key' }, el('span', {}, k.done ? '✓ ' : '', k.label), el('small', {}, k.key_number)))));
    const more = st.keys.length - shown.length;
    if (more > 0) tiles.append(el('div', { class: 'stock-more' }, zh(`另有 ${more} 把`), ' ', en(`${more} more`)));
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
    return Boolean(key.mine) || (snap.my_loans || []).some((l) => l.key_number === key.key_number);
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
    // all keys the person may search; the floor lists show those that concern them
    const keys = snap.keys || [];
    const listed = keys.filter((k) => k.listed !== false);
    const floors = floorsOf(listed);
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
      shown = listed.filter((k) => floorKey(k) === ui.floor);
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
      el('b', {}, sel.map((k) => k.key_number).join('、')));
    show($('reason-sheet'), ui.sheet && sel.length > 0);
    if (ui.sheet) renderSheet();
  }

  function renderMyLoans() {
    const box = $('my-loans');
    const loans = snap.my_loans || [];
    show(box, loans.length > 0);
    if (!loans.length) return;
    // one column per key (up to three), each naming the key and its due time on its own
    // line, so nothing overlaps or is cut off; an overdue key says so in both languages
    box.replaceChildren(el('div', { class: 'my-loans-title' }, zh('我借的'), en('My keys out')),
      ...loans.slice(0, 3).map((l) => el('button', {
        class: 'btn btn-return' + (l.overdue ? ' is-overdue' : ''), type: 'button',
        dataset: { return: l.key_number },
        onclick: () => startReturn(l.key_number),
      }, el('span', { class: 'zh' }, '归还 ', el('b', {}, l.label)),
      el('span', { class: 'return-due' },
        l.overdue ? el('span', { class: 'overdue' }, '已逾期 overdue ') : '至 due ', dueText(l.due_at)))));
    if (loans.length > 3) box.append(el('span', { class: 'more' }, `+${loans.length - 3}`));
  }

  function dueText(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return '';
    const p = (n) => String(n).padStart(2, '0');
    const time = `${p(d.getHours())}:${p(d.getMinutes())}`;
    return d.toDateString() === new Date().toDateString() ? time : `${d.getMonth() + 1}/${d.getDate()} ${time}`;
  }

  function keyButton(k) {
    const mine = k.status === 'out' && isMine(k);
    const drawable = k.status === 'ok';
    const picked = ui.selected.some((s) => s.key_number === k.key_number);
    let tag = null;
    if (mine) tag = pair(T.mine);
    else if (k.why) tag = pair([k.why.zh, k.why.en]);  // never hide why (the server's words)
    else if (k.status === 'approval_required') tag = pair(T.approval_required);
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
      'aria-disabled': drawable || mine || k.status === 'approval_required' ? 'false' : 'true',
      onclick: () => touchKey(k, mine),
    },
    ...labelParts(k.label),
    el('span', { class: 'key-meta' }, el('span', { class: 'key-no' }, k.key_number),
      k.slot ? el('span', { class: 'key-slot' }, `格口 ${k.slot}`) : null),
    tag ? el('span', { class: 'key-tag' }, ...tag) : null);
  }

  // Labels carry both languages ("高压配电房 HV power room"): Chinese large, English below.
  function labelParts(label) {
    const m = /^(.*[\u3400-\u9fff\uff00-\uffef][^\s]*)\s+([A-Za-z].*)$/.exec(label || '');
    if (!m) return [el('span', { class: 'key-label' }, label || '')];
    return [el('span', { class: 'key-label' }, m[1]), el('span', { class: 'key-label-en' }, m[2])];
  }

  function touchKey(k, mine) {
    if (mine) { startReturn(k.key_number); return; }
    // K7: 需部门领导审批 — 申请: the touch sends the request to the person's leader
    if (k.status === 'approval_required') { post('request-approval', { key_number: k.key_number }); return; }
    if (k.status !== 'ok') {
      showToast(...(k.why ? [k.why.zh, k.why.en] : k.status === 'out' ? T.key_out : T.cannot), '', 'info');
      return;
    }
    const i = ui.selected.findIndex((s) => s.key_number === k.key_number);
    if (ui.selected.length === 0) {
      ui.selected = [k];
      ui.sheet = true;          // one key: straight to the reasons
      pick(k);
    } else if (i >= 0) {
      ui.selected.splice(i, 1);  // adding more keys: touching a picked one drops it
    } else if (ui.selected.length >= MAX_KEYS) {
      showToast(...T.too_many, '', 'info');
      return;
    } else {
      ui.selected.push(k);
      pick(k);
    }
    render();
  }

  // While the person reads the reasons, the cabinet sends the lock board its coil time, so
  // touching a reason opens the slot one frame later. A hint only: it opens and decides
  // nothing, and the screen does not wait for it.
  function pick(k) {
    fetch(`${API}/pick`, {
      method: 'POST', cache: 'no-store', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ keys: [k.key_number] }),
    }).catch(() => {});
  }

  function renderSheet() {
    $('sheet-keys').textContent = ui.selected.map((k) => `${k.label}（${k.key_number}）`).join('、');
    // "other": the reasons give way to the keyboard; Back returns to the reasons.
    show($('reason-grid'), !ui.other);
    show($('other-text'), ui.other);
    // typing: the keyboard needs the room the key names took (they were shown a touch ago)
    $('reason-sheet').classList.toggle('typing', ui.other);
    show($('sheet-add'), !ui.other && ui.selected.length < MAX_KEYS);
    show($('other-go'), ui.other);
    $('other-go').setAttribute('aria-disabled', otherKb.value.trim() ? 'false' : 'true');
    const ask = ui.other ? ['请输入事由（拼音或英文）', 'type the reason, then confirm'] : ['请选择事由', 'touch the reason to open the slot'];
    $('sheet-ask').replaceChildren(...pair(ask));
    const grid = $('reason-grid');
    grid.replaceChildren(...(snap.reasons || []).map((r) => el('button', {
      class: 'btn reason' + (r.code === 'other' ? ' reason-other' : ''), type: 'button',
      dataset: { reason: r.code }, onclick: () => chooseReason(r),
    }, el('span', { class: 'zh' }, r.zh), en(r.en),
    r.code === 'other' ? el('small', { class: 'reason-note' }, '输入事由 type it') : null)));
  }

  function chooseReason(r) {
    if (r.code === 'other') { ui.other = true; render(); return; }  // the text comes first
    sendDraw(r.code, null);
  }

  function sendOther() {
    const text = otherKb.value.trim();
    if (!text) { showToast(...T.other_text, '', 'info'); return; }
    sendDraw('other', text);
  }

  function sendDraw(reasonCode, reasonText) {
    const keys = ui.selected.map((k) => k.key_number);
    const person = snap.person;
    const floor = floorKey(ui.selected[ui.selected.length - 1]);
    ui.sheet = false;
    ui.other = false;
    ui.selected = [];
    otherKb.reset();
    post('draw', { keys, reason_code: reasonCode, reason_text: reasonText }).then((ok) => {
      if (ok) rememberFloor(person, floor);
      else if (snap) render();
    });
  }

  // ------------------------------------------------------------------- the PIN pad
  // Two uses: a chosen draw waits for the PIN (snap.pin.asked: the server decides), or the
  // person sets or changes theirs (ui.pin: the steps below, sent in one request at the end).
  // The duress PIN is typed like any PIN; the page cannot and does not tell them apart.
  const PIN_STEPS = {
    draw: ['请输入 PIN', 'Enter your PIN'],
    old: ['请输入当前 PIN', 'Enter your current PIN'],
    new: ['请输入新 PIN（4–8 位数字）', 'Enter a new PIN (4–8 digits)'],
    repeat: ['请再输入一次新 PIN', 'Enter the new PIN again'],
    duress: ['胁迫 PIN：被迫开柜时输入，柜门照常打开并悄悄报警', 'Duress PIN: if ever forced, type it: the cabinet opens as usual and silently alerts'],
  };

  function pinAsked() {
    return Boolean(snap && snap.state === 'choosing' && snap.pin && snap.pin.asked);
  }

  function openPinChange() {
    const p = snap.pin;
    if (!p) return;
    if (!p.has_pin && !p.may_set) { showToast(...T.pin_not_set, '', 'info'); return; }
    ui.pin = { step: p.has_pin ? 'old' : 'new', entries: {} };
    pinValue = '';
    render();
  }

  function renderPin() {
    const asked = pinAsked();
    if (!asked && ui.pin && !(snap.state === 'choosing' && snap.pin)) ui.pin = null;
    const open = asked || ui.pin !== null;
    show($('pin-sheet'), open);
    show($('pin-open'), snap.state === 'choosing' && Boolean(snap.pin) && !ui.intake);
    if (!open) { pinValue = ''; return; }
    const step = asked ? 'draw' : ui.pin.step;
    $('pin-title-zh').textContent = PIN_STEPS[step][0];
    $('pin-title-en').textContent = PIN_STEPS[step][1];
    $('pin-dots').replaceChildren(...(pinValue
      ? [...pinValue].map(() => el('span', { class: 'pin-dot' }))
      : [el('span', { class: 'placeholder' }, zh('请在右侧输入'), ' ', en('use the keypad'))]));
    const hint = asked && snap.pin
      ? [zh('柜门打开前需输入 PIN'), ' ', en('The slot opens once the PIN is right')]
      : [zh('PIN 只保存加密摘要'), ' ', en('Only a hash of it is kept')];
    $('pin-hint').replaceChildren(...hint);
    show($('pin-back'), !asked);  // a draw waiting for its PIN is left with 取消 Cancel
    show($('pin-skip'), step === 'duress');
    $('pin-ok').setAttribute('aria-disabled', pinValue.length >= PIN_MIN ? 'false' : 'true');
  }

  function pinDigit(action) {
    if (action === 'back') pinValue = pinValue.slice(0, -1);
    else if (action === 'clear') pinValue = '';
    else if (pinValue.length < PIN_MAX) pinValue += action;
    renderPin();
  }

  function pinOk() {
    if (pinValue.length < PIN_MIN) { showToast(...T.pin_short, '', 'info'); return; }
    const value = pinValue;
    pinValue = '';
    if (pinAsked()) { post('pin', { pin: value }).then(() => { if (snap) render(); }); return; }
    const p = ui.pin;
    p.entries[p.step] = value;
    if (p.step === 'old') p.step = 'new';
    else if (p.step === 'new') p.step = 'repeat';
    else if (p.step === 'repeat') {
      if (p.entries.repeat !== p.entries.new) {
        showToast(...T.pin_mismatch, '', 'info');
        p.step = 'new';
      } else p.step = 'duress';
    } else { sendPinChange(p.entries.duress); return; }
    render();
  }

  function sendPinChange(duress) {
    const e = ui.pin.entries;
    const body = { old_pin: e.old || null, new_pin: e.new, duress_pin: duress || null };
    ui.pin = null;
    post('pin/change', body).then(() => { if (snap) render(); });
  }

  function pinBack() {
    pinValue = '';
    const p = ui.pin;
    if (!p) return;
    const before = { old: null, new: snap.pin && snap.pin.has_pin ? 'old' : null, repeat: 'new', duress: 'repeat' }[p.step];
    if (before) p.step = before;
    else ui.pin = null;
    render();
  }

  function buildPinPad() {
    const pad = $('pin-pad');
    const keys = ['1', '2', '3', '4', '5', '6', '7', '8', '9', ['⌫', 'back'], '0', ['清除 Clear', 'clear']];
    for (const k of keys) {
      const [label, action] = Array.isArray(k) ? k : [k, k];
      pad.append(el('button', {
        class: 'btn pad' + (action === 'clear' ? ' pad-clear' : ''), type: 'button',
        dataset: { pin: action }, onclick: () => pinDigit(action),
      }, label));
    }
  }

  // ---------------------------------------------------------------- intake (K1)
  function intakeOpen() {
    return ui.intake !== null && snap && snap.state === 'choosing';
  }

  function openIntake() {
    // Unit is the usual case, one key the usual count: both preset, so a unit key needs only
    // the room, the department, the name and the confirmation.
    ui.intake = { step: 1, type: 'unit', room: '', count: 1, dept: null, confirmed: false };
    nameKb.reset();
    render();
  }

  const intakeType = () => INTAKE_TYPES.find((t) => t.code === ui.intake.type);

  // What will be sent, or the first thing still missing (as [zh, en]).
  function intakeRecord() {
    const f = ui.intake;
    const type = intakeType();
    const room = f.room;
    const name = nameKb.value.trim();
    return {
      missing: !room ? T.room_first : !f.dept ? T.dept_first : !name ? T.name_first
        : !f.confirmed ? T.confirm_first : null,
      body: {
        key_number: room ? type.prefix + room : '', label: room ? type.label(room) : '',
        room_number: room || null, group_code: type.group, category: type.category,
        key_count: f.count, delivered_by: name, delivered_by_department: f.dept || '',
        deliverer_confirmed: f.confirmed,
      },
    };
  }

  // A row of preset buttons; the chosen one is marked .on.
  function choiceButtons(items, current, attr, pick) {
    return items.map((it) => el('button', {
      class: 'btn choice' + (it.value === current ? ' on' : ''), type: 'button',
      dataset: { [attr]: String(it.value) }, 'aria-pressed': it.value === current ? 'true' : 'false',
      onclick: () => { pick(it.value); render(); },
    }, ...it.text));
  }

  function renderIntake() {
    const f = ui.intake;
    show($('intake-key'), f.step === 1);
    show($('intake-deliverer'), f.step === 2);
    const rec = intakeRecord();
    if (f.step === 1) renderIntakeKey(rec);
    else renderIntakeDeliverer(rec);
  }

  function renderIntakeKey(rec) {
    const f = ui.intake;
    const type = intakeType();
    $('intake-room').replaceChildren(f.room
      ? el('b', {}, el('span', { class: 'prefix' }, type.prefix), f.room)
      : el('span', { class: 'placeholder' }, zh('输入房号'), ' ', en('type the room no.')));
    $('intake-types').replaceChildren(...choiceButtons(
      INTAKE_TYPES.map((t) => ({ value: t.code, text: [zh(t.zh), en(t.en)] })), f.type, 'intakeType',
      (v) => { f.type = v; }));
    $('intake-counts').replaceChildren(...choiceButtons(
      INTAKE_COUNTS.map((n) => ({ value: n, text: [String(n)] })), f.count, 'count', (v) => { f.count = v; }));
    $('intake-depts').replaceChildren(...choiceButtons(
      DEPARTMENTS.map(([z, e]) => ({ value: z, text: [zh(z), en(e)] })), f.dept, 'dept', (v) => { f.dept = v; }));
    $('intake-preview').replaceChildren(...intakePreview(rec.body));
    const ready = Boolean(f.room && f.dept);
    $('intake-next').setAttribute('aria-disabled', ready ? 'false' : 'true');
  }

  function intakePreview(b) {
    if (!b.key_number) return [zh('新钥匙'), ' ', en('New key')];
    return [el('b', {}, b.key_number), ' ', b.label, ' ', zh(`${b.key_count} 把`), ' ', en(b.key_count === 1 ? '1 key' : `${b.key_count} keys`)];
  }

  function renderIntakeDeliverer(rec) {
    const f = ui.intake;
    const b = rec.body;
    // The whole record in one line: this is what the deliverer confirms.
    const checked = f.checked ? { key_number: f.checked.key_number, label: f.checked.label || b.label } : {};
    $('intake-summary').replaceChildren(
      el('span', { class: 'chip' }, ...intakePreview({ ...b, ...checked })),
      el('span', { class: 'chip' }, zh('送交人'), ' ', en('from'), ' ', b.delivered_by_department, ' ',
        el('b', {}, b.delivered_by || '…')));
    const confirm = $('intake-confirm');
    confirm.classList.toggle('on', f.confirmed);
    confirm.setAttribute('aria-pressed', f.confirmed ? 'true' : 'false');
    $('intake-submit').setAttribute('aria-disabled', rec.missing ? 'true' : 'false');
  }

  function intakeNext() {
    const f = ui.intake;
    if (!f.room) { showToast(...T.room_first, '', 'info'); return; }
    if (!f.dept) { showToast(...T.dept_first, '', 'info'); return; }
    // Issue 14 item 7: the room and the key number are checked now, not after the whole
    // form (an unknown room or a number taken is refused in a toast; a second delivery for
    // a room that has a key comes back with its own number, e.g. U606-2).
    const b = intakeRecord().body;
    post('intake/check', { key_number: b.key_number, label: b.label, room_number: b.room_number,
      group_code: b.group_code }, (checked) => {
      f.checked = checked;
      f.step = 2;
      render();
    });
  }

  function intakeBack() {
    ui.intake.checked = null;
    if (ui.intake.step === 2) ui.intake.step = 1;
    else ui.intake = null;  // back to the keys; the visit goes on
    render();
  }

  function submitIntake() {
    const rec = intakeRecord();
    if (rec.missing) { showToast(...rec.missing, '', 'info'); return; }
    // On success the server moves to "intake" (the slot screen) and the form resets itself;
    // on a refusal (duplicate number, no free slot…) the toast says why and the form stays.
    post('intake', rec.body).then((ok) => { if (!ok && snap) render(); });
  }

  // --------------------------------------------------------------------- keypad
  // The room-number keypad, used by the key search (ui.query) and the intake form (the room):
  // `read`/`write` say which value it edits; `attr` names its keys (data-pad, data-room-pad)
  // so each keypad's keys can be told apart.
  function buildKeypad(pad, attr, read, write) {
    const keys = [
      ['1'], ['2'], ['3'], ['B'],
      ['4'], ['5'], ['6'], ['F'],
      ['7'], ['8'], ['9'], ['⌫', 'back'],
      ['0', null, 'wide'], ['清除 Clear', 'clear', 'wide'],
    ];
    for (const [label, action, wide] of keys) {
      pad.append(el('button', {
        class: 'btn pad' + (wide ? ' pad-wide' : ''), type: 'button', dataset: { [attr]: action || label },
        onclick: () => {
          const q = read();
          if (action === 'back') write(q.slice(0, -1));
          else if (action === 'clear') write('');
          else if (q.length < 8) write(q + label);
          render();
        },
      }, label));
    }
  }

  // ----------------------------------------------------------- on-screen keyboard
  /* A small Latin keyboard: digits, A–Z, space, backspace, clear. The kiosk has no system keyboard,
   * and Chinese would need an input method, so names and free text are typed in capitals,
   * Chinese names in pinyin ("SUN WEI"). Used for the intake's deliverer name and the
   * "other" reason. Its value lives here, not in `ui`: typing only redraws its own display
   * and then calls onChange (for buttons that depend on the text).
   *
   *   const kb = makeKeyboard({ max, hint: [zh, en], onChange });
   *   host.append(kb.node); kb.value; kb.reset();
   */
  const KB_ROWS = ['1234567890', 'QWERTYUIOP', 'ASDFGHJKL', 'ZXCVBNM'];
  const KB_SHOWN = 40;  // characters that fit the display at 1024 px

  function makeKeyboard({ max, hint, onChange }) {
    let value = '';
    const text = el('span', { class: 'kb-text' });
    const count = el('span', { class: 'kb-count' });
    const display = el('div', { class: 'kb-display' }, text, count);

    function redraw() {
      // a long text shows its end, where the typing is
      const tail = value.length > KB_SHOWN ? `…${value.slice(-KB_SHOWN)}` : value;
      if (value) text.replaceChildren(el('b', {}, tail), el('span', { class: 'kb-caret' }));
      else text.replaceChildren(el('span', { class: 'placeholder' }, zh(hint[0]), ' ', en(hint[1])));
      count.textContent = value.length > max - 20 ? `${value.length}/${max}` : '';
    }
    function type(ch) {
      if (ch === ' ' && (!value || value.endsWith(' '))) return;  // no leading or double spaces
      if (value.length >= max) return;
      value += ch;
      changed();
    }
    function changed() { redraw(); if (onChange) onChange(value); }
    const key = (label, action, cls) => el('button', {
      class: 'btn kb-key' + (cls ? ' ' + cls : ''), type: 'button', dataset: { kb: action },
      onclick: () => {
        if (action === 'back') value = value.slice(0, -1);
        else if (action === 'clear') value = '';
        else { type(action === 'space' ? ' ' : action); return; }
        changed();
      },
    }, ...label);

    // four rows, so the keyboard, its display and the action row fit a 7" screen:
    // digits (a room number in a reason), QWERTY, A–L and backspace, clear Z–M and space
    const keys = el('div', { class: 'kb-keys' });
    KB_ROWS.forEach((row, i) => {
      const line = el('div', { class: `kb-row kb-row-${i + 1}` });
      if (i === 3) line.append(key([zh('清空'), en('Clear')], 'clear', 'kb-wide'));
      for (const ch of row) line.append(key([ch], ch));
      if (i === 2) line.append(key(['⌫'], 'back', 'kb-wide'));
      if (i === 3) line.append(key([zh('空格'), en('Space')], 'space', 'kb-space'));
      keys.append(line);
    });
    redraw();
    return {
      node: el('div', { class: 'kb' }, display, keys),
      get value() { return value; },
      reset() { value = ''; redraw(); },
    };
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
    for (const id of ['countdown-s', 'manager-count', 'cosign-count', 'incoming-count', 'returner-count', 'slot-count']) $(id).textContent = s;
    $('app').classList.toggle('hurry', left !== null && left <= 10);
  }

  // ---------------------------------------------------------------------- wiring
  function init() {
    buildKeypad($('keypad'), 'pad', () => ui.query, (v) => { ui.query = v; });
    buildPinPad();
    $('pin-open').addEventListener('click', openPinChange);
    $('pin-ok').addEventListener('click', pinOk);
    $('pin-back').addEventListener('click', pinBack);
    $('pin-skip').addEventListener('click', () => sendPinChange(null));
    buildKeypad($('intake-pad'), 'roomPad', () => ui.intake.room, (v) => { ui.intake.room = v; });
    nameKb = makeKeyboard({
      max: NAME_MAX, hint: ['送交人姓名（拼音）', "Deliverer's name (pinyin)"],
      onChange: () => { if (intakeOpen()) renderIntake(); },
    });
    $('intake-name').append(nameKb.node);
    otherKb = makeKeyboard({
      max: REASON_TEXT_MAX, hint: ['输入事由', 'Type the reason'],
      onChange: () => { if (ui.sheet) renderSheet(); },
    });
    $('other-text').append(otherKb.node);
    // Touches while choosing (e.g. a custodian filling in the intake form) keep the visit
    // alive: the server restarts its choice timer. At most one call every 10 s.
    let lastStillHere = 0;
    document.addEventListener('pointerdown', () => {
      const now = Date.now();
      if (now - lastStillHere < 10000) return;
      lastStillHere = now;
      fetch(`${API}/still-here`, { method: 'POST', cache: 'no-store' }).catch(() => {});
    }, { passive: true });
    $('intake-open').addEventListener('click', openIntake);
    $('stock-open').addEventListener('click', () => post('stock', {}));
    $('stock-done').addEventListener('click', () => post('stock/finish', {}));
    $('handover-open').addEventListener('click', handoverPressed);
    $('returner-skip').addEventListener('click', () => post('return-without-badge', {}));
    $('handover-back').addEventListener('click', () => { ui.handover = false; render(); });
    $('return-back').addEventListener('click', () => { ui.returning = null; render(); });
    $('handover-accept').addEventListener('click', () => post('handover/accept', {}));
    $('intake-next').addEventListener('click', intakeNext);
    $('intake-back').addEventListener('click', intakeBack);
    $('intake-back2').addEventListener('click', intakeBack);
    $('intake-confirm').addEventListener('click', () => { ui.intake.confirmed = !ui.intake.confirmed; render(); });
    $('intake-submit').addEventListener('click', submitIntake);
    $('other-go').addEventListener('click', sendOther);
    $('cancel').addEventListener('click', () => { resetUi(); post('cancel'); });
    $('mode-floors').addEventListener('click', () => { ui.mode = 'floors'; render(); });
    $('mode-search').addEventListener('click', () => { ui.mode = 'search'; render(); });
    $('sheet-back').addEventListener('click', () => {
      // from the typed reason back to the reasons; from the reasons back to the keys
      if (ui.other) ui.other = false;
      else { ui.sheet = false; ui.selected = []; otherKb.reset(); }
      render();
    });
    $('sheet-add').addEventListener('click', () => { ui.sheet = false; render(); });
    $('selection-clear').addEventListener('click', () => { ui.selected = []; render(); });
    $('selection-go').addEventListener('click', () => { ui.sheet = true; render(); });
    $('alarm-ack').addEventListener('click', () => post('alarms/acknowledge'));
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
