import { html } from 'htm/preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { ApiError, get, post, requestId } from '../api.js';
import { t, two, when } from '../i18n.js';

// What to do after a refusal of the encoder or the card rules, by its code: the server's sentence says what happened.
const NEXT = {
  NO_CARD: 'doInsert',
  CARD_REMOVED: 'doReinsert',
  WRONG_CARD_KIND: 'doOtherCard',
  NOT_OUR_CARD: 'doOtherCard',
  PSC_ATTEMPTS_LOW: 'doPscLow',
  PSC_REJECTED: 'doPscLow',
  CARD_LOCKED: 'doPscLow',
  CARD_NOT_FOR_METER: 'doOtherCard',
  WRONG_CARD_ROLE: 'doOtherCard',
  PURCHASE_PENDING: 'doPending',
  CARD_DAMAGED: 'doDamaged',
  TIMEOUT: 'doEncoder',
  FRAMING_ERROR: 'doEncoder',
  CARD_REPORTED_LOST: 'doLost',
  CARD_NOT_BLANK: 'doNotBlank',
  UNKNOWN_CUSTOMER: 'doUnknownCustomer',
  CUSTOMER_HAS_CARD: 'doHasCard',
  ARCHIVE_CONFLICT: 'doArchive',
  NOTHING_TO_REISSUE: 'doNothingToReissue',
  ALREADY_LOADED: 'doAlreadyLoaded',
  CARD_COUNT_MISMATCH: 'doReconcile',
  WRITE_VERIFY_FAILED: 'doVerify',
  ADOPTION_NEEDED: 'doAdopt',
  UNKNOWN_ENCODER: 'doConfig',
  CONFIG_INVALID: 'doConfig',
  NOT_A_CARD_METER: 'doConfig',
  UNIT_MISMATCH: 'doConfig',
  CARD_NOT_ISSUED: 'doNotIssued',
  CARD_UNKNOWN: 'doUnknownCard',
};

/** The counter's other tasks, each on one key (when no field has the focus) and a button. */
const TASKS = [
  ['open', 'O'],
  ['replace', 'R'],
  ['rewrite', 'W'],
  ['reissue', 'I'],
  ['check', 'K'],
  ['param', 'M'],
  ['health', 'H'],
];

/**
 * The counter: read the card, type the amount, sell, print the receipt. Keyboard-first: F2 (or Enter in an empty
 * amount) reads the card, the amount field has the focus, Enter sells, Enter again confirms, P prints, Esc starts over.
 */
export function CounterPage({ me }) {
  const [card, setCard] = useState(null);
  const [amount, setAmount] = useState('');
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [receipt, setReceipt] = useState(null);
  const [sell, setSell] = useState(null);
  const [task, setTask] = useState(null);
  const [slip, setSlip] = useState(null);
  const [health, setHealth] = useState(null);
  const [lastMeter, setLastMeter] = useState('');
  const amountRef = useRef(null);
  const okRef = useRef(null);
  const may = me.role === 'cashier';

  const refusal = (e) => {
    const code = e instanceof ApiError ? (e.body?.error?.code ?? '') : '';
    return { text: e instanceof ApiError ? e.message : String(e), next: NEXT[code] ? t(NEXT[code]) : '' };
  };

  const clear = () => {
    setError(null);
    setReceipt(null);
    setSlip(null);
    setHealth(null);
    setTask(null);
    setConfirming(false);
  };

  const readCard = async () => {
    setBusy(true);
    clear();
    try {
      const r = await post('/api/counter/read', { requestId: requestId() });
      setCard(r);
      setLastMeter(r.meterId ?? r.meterNumber ?? '');
      setSell({ requestId: requestId() });
      setTimeout(() => amountRef.current?.focus(), 0);
    } catch (e) {
      setCard(null);
      setError(refusal(e));
    } finally {
      setBusy(false);
    }
  };

  const doSell = async () => {
    setBusy(true);
    setError(null);
    try {
      const r = await post('/api/counter/sell', { requestId: sell.requestId, meter: card.meterId, amount, unit: card.unit });
      setReceipt(r.receipt);
      setCard(null);
      setAmount('');
      setConfirming(false);
    } catch (e) {
      setError(refusal(e));
      setConfirming(false);
    } finally {
      setBusy(false);
    }
  };

  const onSubmit = (e) => {
    e.preventDefault();
    if (busy || !card) return;
    if (amount.trim() === '') return;
    if (!confirming) {
      setConfirming(true);
      setTimeout(() => okRef.current?.focus(), 0);
      return;
    }
    doSell();
  };

  const checkHealth = async () => {
    setBusy(true);
    clear();
    setCard(null);
    try {
      setHealth(await post('/api/counter/health', {}));
    } catch (e) {
      setError(refusal(e));
    } finally {
      setBusy(false);
    }
  };

  const startTask = (name) => {
    if (!may || busy) return;
    if (name === 'health') return checkHealth();
    clear();
    setCard(null);
    setTask({ name, requestId: requestId() });
  };

  /** A task's request, after its confirmation: a slip to print, or the refusal with what to do. */
  const runTask = async (path, body) => {
    setBusy(true);
    setError(null);
    try {
      const r = await post(path, body);
      if (r.status === 'accepted') {
        // Still running after the wait: the same request id stays, so a retry learns the outcome instead of running it again.
        setError({ text: t('running'), next: '' });
        return;
      }
      setTask(null);
      setSlip(r.slip ?? { kind: 'check', ...r });
    } catch (e) {
      setError(refusal(e));
      // A refusal changed nothing: a retry (another card, corrected fields) is a new request.
      if (e instanceof ApiError && e.status === 422) setTask((x) => (x ? { ...x, requestId: requestId() } : x));
    } finally {
      setBusy(false);
    }
  };

  useEffect(() => {
    const onKey = (e) => {
      const typing = ['INPUT', 'SELECT', 'TEXTAREA'].includes(e.target.tagName);
      if (e.key === 'F2') {
        e.preventDefault();
        if (may && !busy) readCard();
      } else if (e.key === 'Escape') {
        setConfirming(false);
        setCard(null);
        setError(null);
        setTask(null);
        document.activeElement?.blur?.();
      } else if ((e.key === 'p' || e.key === 'P') && (receipt || slip) && !typing) {
        window.print();
      } else if (!typing && !e.ctrlKey && !e.altKey && !e.metaKey) {
        const hit = TASKS.find(([, key]) => key === e.key.toUpperCase());
        if (hit) {
          e.preventDefault();
          startTask(hit[0]);
        }
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  });

  const unitWord = card?.unit === 'energy' ? t('kwh') : t('yuan');
  return html`<section id="counter-page" class="counter">
    <p class="hint noprint">${t('counterKeys')}</p>
    <div class="noprint actions">
      <button id="card-read" disabled=${!may || busy} onClick=${readCard} title=${may ? '' : t('notAllowed')}>${t('readCard')} (F2)</button>
      ${TASKS.map(
        ([name, key]) =>
          html`<button id=${`task-${name}`} disabled=${!may || busy} onClick=${() => startTask(name)}>${t(`task-${name}`)} (${key})</button>`,
      )}
    </div>
    ${error ? html`<div class="refusal" role="alert" id="counter-error"><p>${error.text}</p>${error.next ? html`<p><b>${error.next}</b></p>` : null}</div>` : null}
    ${
      card
        ? html`<form class="dialog noprint" id="counter-sale" onSubmit=${onSubmit}>
          <dl class="facts" id="card-facts">
            <dt>${t('meter')}</dt><dd id="card-meter">${card.meterId ?? card.meterNumber}</dd>
            <dt>${t('customer')}</dt><dd>${card.customerNumber ?? '—'}</dd>
            <dt>${t('cardRole')}</dt><dd>${card.role}</dd>
            <dt>${t('lastPurchase')}</dt><dd>#${card.purchase.count} · ${two(card.purchase.amount / 100)} ${unitWord}</dd>
            ${card.problems?.length ? html`<dt>${t('problems')}</dt><dd class="error">${card.problems.join('; ')}</dd>` : null}
          </dl>
          <label>${t('amount')} (${unitWord})
            <input id="sale-amount" ref=${amountRef} inputmode="decimal" value=${amount} disabled=${confirming || busy} onInput=${(e) => setAmount(e.target.value)} />
          </label>
          ${confirming ? html`<p class="confirm" id="sale-confirm">${t('confirmSale', { amount: `${amount} ${unitWord}`, meter: card.meterId ?? card.meterNumber })}</p>` : null}
          <button type="submit" id="sale-ok" ref=${okRef} disabled=${busy}>${confirming ? t('confirm') : t('sell')}</button>
        </form>`
        : null
    }
    ${task ? html`<${TaskForm} key=${task.name} task=${task} setTask=${setTask} busy=${busy} lastMeter=${lastMeter} run=${runTask} />` : null}
    ${health ? html`<${Health} h=${health} />` : null}
    ${receipt ? html`<${Receipt} r=${receipt} />` : null}
    ${slip ? html`<${Slip} s=${slip} />` : null}
  </section>`;
}

/**
 * The form of a task: fields, Enter, then a confirmation that takes the focus, Enter again. The request id is made
 * when the form opens, so a double Enter or a retry after a lost answer runs the task once.
 */
function TaskForm({ task, setTask, busy, lastMeter, run }) {
  const first = useRef(null);
  const ok = useRef(null);
  const [unit, setUnit] = useState(null);
  const [f, setF] = useState({
    // Only the re-issue names the meter of the card read last; the rewrite and the parameter card name one only on purpose.
    meter: task.name === 'reissue' ? lastMeter : '',
    customerNo: '',
    name: '',
    room: '',
    cardSerial: '',
    amount: '',
    reason: 'lost',
    anyMeter: false,
    priceYuan: '',
    alarm1: '',
    alarm2: '',
    overdraft: '',
    hoarding: '',
  });
  const [confirming, setConfirming] = useState(false);
  // Focus in the layout effect, before the next key event: a cashier typing at once must not hit another task's key.
  useLayoutEffect(() => first.current?.focus(), [task.name]);
  useEffect(() => {
    if (task.name === 'open' || task.name === 'param')
      get('/api/counter')
        .then((r) => setUnit(r.unit))
        .catch(() => setUnit('money'));
  }, [task.name]);
  useEffect(() => {
    if (confirming) setTimeout(() => ok.current?.focus(), 0);
  }, [confirming]);
  const set = (k) => (e) => setF({ ...f, [k]: e.target.type === 'checkbox' ? e.target.checked : e.target.value });
  const unitWord = unit === 'energy' ? t('kwh') : t('yuan');
  const question = {
    open: () =>
      t(f.amount.trim() ? 'confirmOpenSale' : 'confirmOpen', { customer: f.customerNo, meter: f.meter, amount: `${f.amount} ${unitWord}` }),
    replace: () => t('confirmReplace', { customer: f.customerNo, reason: t(`reason-${f.reason}`) }),
    reissue: () => t('confirmReissue', { meter: f.meter }),
    rewrite: () => t('confirmRewrite', { who: f.customerNo || f.meter || t('theCardsOwner') }),
    param: () => t('confirmParam', { meter: f.meter || t('anyMeter'), price: f.priceYuan }),
    check: () => (f.anyMeter ? t('confirmCheckAny') : t('confirmCheck')),
  }[task.name];
  const submit = (e) => {
    e.preventDefault();
    if (busy) return;
    if (!confirming) return setConfirming(true);
    const id = { requestId: task.requestId };
    if (task.name === 'open')
      run('/api/counter/open', {
        ...id,
        meter: f.meter,
        customerNo: f.customerNo,
        name: f.name,
        room: f.room,
        cardSerial: f.cardSerial,
        amount: f.amount,
        unit,
      });
    else if (task.name === 'replace')
      run('/api/counter/replace', { ...id, customerNo: f.customerNo, reason: f.reason, cardSerial: f.cardSerial });
    else if (task.name === 'reissue') run('/api/counter/reissue', { meter: f.meter });
    else if (task.name === 'rewrite') run('/api/counter/rewrite', { ...id, customerNo: f.customerNo, meter: f.meter });
    else if (task.name === 'param')
      run('/api/counter/param', {
        ...id,
        meter: f.meter,
        priceYuan: f.priceYuan,
        alarm1: f.alarm1,
        alarm2: f.alarm2,
        overdraft: f.overdraft,
        hoarding: f.hoarding,
      });
    else run('/api/counter/check', { anyMeter: f.anyMeter });
    setConfirming(false);
  };
  const field = (k, label, ref, props = {}) =>
    html`<label>${label}<input id=${`task-${k}`} ref=${ref} value=${f[k]} disabled=${confirming || busy} onInput=${set(k)} ...${props} /></label>`;
  return html`<form class="dialog noprint" id=${`task-form-${task.name}`} onSubmit=${submit}>
    <h2>${t(`task-${task.name}`)}</h2>
    <p class="hint">${t(`hint-${task.name}`)}</p>
    ${task.name === 'open' ? [field('meter', t('meter'), first), field('customerNo', t('customer'), null, { inputmode: 'numeric' }), field('name', t('customerName'), null), field('room', t('room'), null), field('cardSerial', t('cardSerial'), null, { inputmode: 'numeric', placeholder: t('nextFree') }), field('amount', `${t('firstPurchase')} (${unitWord})`, null, { inputmode: 'decimal' })] : null}
    ${
      task.name === 'replace'
        ? [
            field('customerNo', t('customer'), first, { inputmode: 'numeric' }),
            html`<label>${t('reason')}<select id="task-reason" value=${f.reason} disabled=${confirming || busy} onChange=${set('reason')}>
              <option value="lost">${t('reason-lost')}</option><option value="broken">${t('reason-broken')}</option></select></label>`,
            field('cardSerial', t('cardSerial'), null, { inputmode: 'numeric', placeholder: t('nextFree') }),
          ]
        : null
    }
    ${task.name === 'reissue' ? field('meter', t('meter'), first) : null}
    ${task.name === 'rewrite' ? [field('meter', t('meterOptional'), first), field('customerNo', t('customerOptional'), null, { inputmode: 'numeric' })] : null}
    ${
      task.name === 'param'
        ? [
            field('meter', t('meterOrAll'), first, { placeholder: t('anyMeter') }),
            field('priceYuan', t('priceYuan'), null, { inputmode: 'decimal' }),
            field('alarm1', `${t('alarm1')} (${unitWord})`, null, { inputmode: 'decimal' }),
            field('alarm2', `${t('alarm2')} (${unitWord})`, null, { inputmode: 'decimal' }),
            field('overdraft', `${t('overdraft')} (${unitWord})`, null, { inputmode: 'decimal' }),
            field('hoarding', `${t('hoarding')} (${unitWord})`, null, { inputmode: 'decimal' }),
          ]
        : null
    }
    ${
      task.name === 'check'
        ? html`<label class="inline"><input type="checkbox" id="task-anyMeter" ref=${first} checked=${f.anyMeter} disabled=${confirming || busy} onChange=${set('anyMeter')} /> ${t('anyMeter')}</label>`
        : null
    }
    ${confirming ? html`<p class="confirm" id="task-confirm">${question()}</p>` : null}
    <button type="submit" id="task-ok" ref=${ok} disabled=${busy}>${confirming ? t('confirm') : t('next')}</button>
    <button type="button" onClick=${() => setTask(null)}>${t('cancel')} (Esc)</button>
  </form>`;
}

function Health({ h }) {
  return html`<article class="receipt" id="card-health">
    <h2>${t('task-health')}: <span class=${`pill ${h.ok ? 'good' : 'bad'}`} id="health-verdict">${h.ok ? t('healthy') : t('findingsN', { n: h.findings.length })}</span></h2>
    <dl class="facts">
      <dt>${t('cardKind')}</dt><dd>${h.kind} · ATR ${h.atr}</dd>
      <dt>${t('pscLeft')}</dt><dd id="health-psc">${h.pscAttemptsLeft}</dd>
      ${
        h.blank
          ? html`<dt>${t('cardRole')}</dt><dd>${t('blankCard')}</dd>`
          : html`<dt>${t('meter')}</dt><dd id="health-meter">${h.meterNumber ?? '—'}</dd>
        <dt>${t('customer')}</dt><dd>${h.customerNumber ?? '—'}</dd>
        <dt>${t('cardSerial')}</dt><dd id="health-serial">${h.cardSerial ?? '—'}</dd>
        <dt>${t('count')}</dt><dd>${h.purchaseCount ?? '—'}${h.booksCount !== undefined ? ` (${t('books')} ${h.booksCount})` : ''}</dd>`
      }
    </dl>
    ${h.findings.length > 0 ? html`<ul class="refusal" id="health-findings">${h.findings.map((x) => html`<li>${x}</li>`)}</ul>` : html`<p class="ok">${t('healthyText')}</p>`}
  </article>`;
}

/** The printout of a task, as the CLI prints its line: what was written on which card, by whom, when. */
function Slip({ s }) {
  const unit = s.unit === 'energy' ? t('kwh') : t('yuan');
  const amount = s.unit ? `${two(s.amount / 100)} ${unit}` : '—';
  return html`<article class="receipt" id="slip" data-kind=${s.kind}>
    <h2>${t(`slip-${s.kind}`)}</h2>
    <dl class="facts">
      ${s.receiptNo ? html`<dt>${t('receiptNo')}</dt><dd id="slip-receipt-no">${s.receiptNo}</dd>` : null}
      <dt>${t('meter')}</dt><dd id="slip-meter">${s.anyMeter ? t('anyMeter') : (s.meter ?? s.meterNumber)}</dd>
      ${s.customerNumber ? html`<dt>${t('customer')}</dt><dd>${s.customerNumber}</dd>` : null}
      ${s.cardSerial ? html`<dt>${t('cardSerial')}</dt><dd id="slip-serial">${s.cardSerial}</dd>` : null}
      ${s.kind === 'replace' ? html`<dt>${t('oldCard')}</dt><dd id="slip-old">${s.oldSerial ?? '—'} (${t(`reason-${s.reason}`)}, ${t('refusedFromNow')})</dd>` : null}
      ${s.purchaseCount !== undefined ? html`<dt>${t('count')}</dt><dd id="slip-count">${s.purchaseCount}</dd>` : null}
      ${s.kind !== 'check' && s.kind !== 'param' ? html`<dt>${t('amount')}</dt><dd id="slip-amount">${amount}</dd>` : null}
      ${
        s.kind === 'param'
          ? html`<dt>${t('priceYuan')}</dt><dd id="slip-price">${(s.price / 10000).toFixed(4)}</dd>
        ${['alarm1', 'alarm2', 'overdraft', 'hoarding'].map((k) => html`<dt>${t(k)}</dt><dd data-limit=${k}>${two(s.limits[k] / 100)} ${unit}</dd>`)}`
          : null
      }
      ${s.problems?.length ? html`<dt>${t('problemsBefore')}</dt><dd id="slip-problems">${s.problems.join('; ')}</dd>` : null}
      ${s.operator ? html`<dt>${t('operator')}</dt><dd>${s.operator}</dd>` : null}
      ${s.at ? html`<dt>${t('time')}</dt><dd>${when(Date.parse(s.at))}</dd>` : null}
    </dl>
    <p id="slip-note"><b>${t(`note-${s.kind}${s.kind === 'open' && !s.sale ? '-empty' : ''}`)}</b></p>
    <button class="noprint" id="slip-print" onClick=${() => window.print()}>${t('print')} (P)</button>
  </article>`;
}

function Receipt({ r }) {
  const unit = r.unit === 'energy' ? t('kwh') : t('yuan');
  return html`<article class="receipt" id="receipt">
    <h2>${t('receipt')}</h2>
    <dl class="facts">
      <dt>${t('receiptNo')}</dt><dd id="receipt-no">${r.receiptNo}</dd>
      <dt>${t('meter')}</dt><dd>${r.meter}</dd>
      <dt>${t('customer')}</dt><dd>${r.customerNumber ?? '—'}</dd>
      <dt>${t('amount')}</dt><dd id="receipt-amount">${two(r.amount / 100)} ${unit}</dd>
      <dt>${t('count')}</dt><dd>${r.purchaseCount}</dd>
      <dt>${t('operator')}</dt><dd>${r.operator}</dd>
      <dt>${t('time')}</dt><dd>${when(Date.parse(r.at))}</dd>
    </dl>
    <button class="noprint" id="receipt-print" onClick=${() => window.print()}>${t('print')} (P)</button>
  </article>`;
}
