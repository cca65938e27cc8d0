import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { ApiError, get, post, requestId } from '../api.js';
import { balanceText, gatewayTimeZone, ledgerAmount, t, two, when, yuan, kwh } from '../i18n.js';
import { setRows, useLive } from '../live.js';
import { relayText } from './meters.js';

const ROLES = { topup: 'cashier', relay: 'technician', read: 'technician', 'time-sync': 'technician', replace: 'technician' };

export function MeterPage({ id, me }) {
  const live = useLive();
  const [detail, setDetail] = useState(null);
  const [error, setError] = useState('');
  const [dialog, setDialog] = useState(null);
  const [result, setResult] = useState(null);
  const load = () =>
    get(`/api/meters/${encodeURIComponent(id)}`)
      .then((d) => {
        setRows([d.meter]);
        setDetail(d);
      })
      .catch((e) => setError(e.message));
  useEffect(() => {
    load();
  }, [id]);
  const m = live.rows.get(id) ?? detail?.meter;
  if (error) return html`<p class="error">${error}</p>`;
  if (!m) return html`<p>${t('loading')}</p>`;
  const may = (action) => me.role === ROLES[action];

  const run = async (path, body) => {
    setResult(null);
    try {
      const r = await post(`/api/meters/${encodeURIComponent(id)}/${path}`, body);
      const moved = path === 'replace' && r.status === 'done' ? r.result?.moved : undefined;
      const text =
        r.status !== 'done'
          ? t('running')
          : moved
            ? t('replacedMoved', { address: body.newAddress, amount: moved.unit === 'kWh' ? kwh(moved.amount) : yuan(moved.amount) })
            : t('done');
      setResult({ ok: r.status === 'done', text, reply: r });
      setDialog(null);
      load();
    } catch (e) {
      const text = e instanceof ApiError ? e.message : String(e);
      setResult({ ok: false, text });
      if (dialog) setDialog({ ...dialog, error: text });
    }
  };

  return html`<section class="meter" id="meter-page" data-meter=${m.id}>
    <p><a href="#/meters">${t('back')}</a></p>
    <h1>${m.id} <span class=${`pill ${m.online ? 'good' : 'bad'}`} id="meter-online">${m.online ? t('online') : t('offline')}</span></h1>
    <dl class="facts">
      <dt>${t('customer')}</dt><dd>${m.customerNo ?? '—'}</dd>
      <dt>${t('bus')}</dt><dd>${m.bus}</dd>
      <dt>${t('balance')}</dt><dd id="meter-balance">${balanceText(m.balance)}</dd>
      <dt>${t('relay')}</dt><dd id="meter-relay" class=${m.relay === 'open' ? 'cut' : ''}>${relayText(m.relay)}</dd>
      <dt>${t('lastRead')}</dt><dd>${when(m.lastGoodReadAt)}</dd>
    </dl>
    <div class="actions">
      ${m.can.topup ? html`<button id="act-topup" disabled=${!may('topup')} title=${may('topup') ? '' : t('notAllowed')} onClick=${() => setDialog({ kind: 'topup', requestId: requestId(), unit: m.creditUnit ?? 'money', amount: '' })}>${t('topup')}</button>` : null}
      ${m.can.relay ? html`<button id="act-trip" class="danger" disabled=${!may('relay')} title=${may('relay') ? '' : t('notAllowed')} onClick=${() => setDialog({ kind: 'trip', requestId: requestId(), reason: '' })}>${t('trip')}</button>` : null}
      ${m.can.relay ? html`<button id="act-close" disabled=${!may('relay')} title=${may('relay') ? '' : t('notAllowed')} onClick=${() => setDialog({ kind: 'close', requestId: requestId(), reason: '' })}>${t('close')}</button>` : null}
      <button id="act-read" disabled=${!may('read')} title=${may('read') ? '' : t('notAllowed')} onClick=${() => run('read', { requestId: requestId() })}>${t('readNow')}</button>
      <button id="act-replace" disabled=${!may('replace')} title=${may('replace') ? '' : t('notAllowed')} onClick=${() => setDialog({ kind: 'replace', requestId: requestId(), newAddress: '', newAssetNo: '', newProfile: '', reason: '', importKwh: '', balance: '', purchaseCount: '' })}>${t('replaceMeter')}</button>
      ${m.can.timeSync ? html`<button id="act-time" disabled=${!may('time-sync')} title=${may('time-sync') ? '' : t('notAllowed')} onClick=${() => run('time-sync', { requestId: requestId() })}>${t('timeSync')}</button>` : null}
    </div>
    ${result ? html`<p class=${result.ok ? 'ok' : 'error'} id="action-result" role="status">${result.text}</p>` : null}
    ${dialog ? html`<${ActionDialog} meter=${m} dialog=${dialog} setDialog=${setDialog} run=${run} />` : null}
    <${Supply} id=${m.id} me=${me} />
    <${Charts} id=${m.id} />
    <h2>${t('ledger')}</h2>
    <${Ledger} entries=${detail?.ledger ?? []} />
  </section>`;
}

function ActionDialog({ meter, dialog, setDialog, run }) {
  const first = useRef(null);
  const ok = useRef(null);
  useEffect(() => first.current?.focus(), [dialog.kind]);
  // Keyboard-first: Enter types the amount, Enter again confirms; the confirm button takes the focus in between.
  useEffect(() => {
    if (dialog.confirming) ok.current?.focus();
  }, [dialog.confirming]);
  const cancel = () => setDialog(null);
  const onKey = (e) => {
    if (e.key === 'Escape') cancel();
  };
  if (dialog.kind === 'topup') {
    const shown = dialog.unit === 'energy' ? kwh(Number(dialog.amount)) : yuan(Number(dialog.amount));
    const submit = (e) => {
      e.preventDefault();
      if (!dialog.confirming) return setDialog({ ...dialog, confirming: true, error: '' });
      run('topup', { requestId: dialog.requestId, unit: dialog.unit, amount: dialog.amount });
    };
    return html`<form class="dialog" id="dialog-topup" onSubmit=${submit} onKeyDown=${onKey}>
      <label>${t('amount')}
        <input id="topup-amount" ref=${first} inputmode="decimal" value=${dialog.amount} disabled=${dialog.confirming}
          onInput=${(e) => setDialog({ ...dialog, amount: e.target.value })} />
        <select id="topup-unit" value=${dialog.unit} disabled=${dialog.confirming} onChange=${(e) => setDialog({ ...dialog, unit: e.target.value })}>
          <option value="money">${t('yuan')}</option><option value="energy">${t('kwh')}</option>
        </select>
      </label>
      ${dialog.confirming ? html`<p class="confirm">${t('confirmTopup', { amount: shown, meter: meter.id })}</p>` : null}
      ${dialog.error ? html`<p class="error" role="alert">${dialog.error}</p>` : null}
      <button type="submit" id="dialog-ok" ref=${ok}>${dialog.confirming ? t('confirm') : t('topup')}</button>
      <button type="button" onClick=${cancel}>${t('cancel')}</button>
    </form>`;
  }
  if (dialog.kind === 'replace') {
    const set = (k) => (e) => setDialog({ ...dialog, [k]: e.target.value });
    const submit = (e) => {
      e.preventDefault();
      if (!dialog.confirming) return setDialog({ ...dialog, confirming: true, error: '' });
      run('replace', {
        requestId: dialog.requestId,
        newAddress: dialog.newAddress,
        newAssetNo: dialog.newAssetNo,
        newProfile: dialog.newProfile,
        reason: dialog.reason,
        final: { importKwh: dialog.importKwh, balance: dialog.balance, purchaseCount: dialog.purchaseCount },
      });
    };
    const input = (k, label, ref, props = {}) =>
      html`<label>${label}<input id=${`replace-${k}`} ref=${ref} value=${dialog[k]} disabled=${dialog.confirming} onInput=${set(k)} ...${props} /></label>`;
    return html`<form class="dialog" id="dialog-replace" onSubmit=${submit} onKeyDown=${onKey}>
      <p class="hint">${t('replaceHint')}</p>
      ${input('newAddress', t('newAddress'), first)}
      ${input('newAssetNo', t('newAssetNo'), null)}
      ${input('newProfile', t('newProfile'), null, { placeholder: meter.profile })}
      ${input('reason', t('reason'), null, { placeholder: t('reasonHint') })}
      <fieldset><legend>${t('finalIfSilent')}</legend>
        ${input('importKwh', t('finalImport'), null, { inputmode: 'decimal' })}
        ${input('balance', t('finalBalance'), null, { inputmode: 'decimal' })}
        ${input('purchaseCount', t('count'), null, { inputmode: 'numeric' })}
      </fieldset>
      ${dialog.confirming ? html`<p class="confirm" id="replace-confirm">${t('confirmReplaceMeter', { meter: meter.id, address: dialog.newAddress })}</p>` : null}
      ${dialog.error ? html`<p class="error" role="alert" id="replace-error">${dialog.error}</p>` : null}
      <button type="submit" id="dialog-ok" ref=${ok}>${dialog.confirming ? t('confirm') : t('next')}</button>
      <button type="button" onClick=${cancel}>${t('cancel')}</button>
    </form>`;
  }
  const submit = (e) => {
    e.preventDefault();
    run('relay', { requestId: dialog.requestId, action: dialog.kind, reason: dialog.reason });
  };
  return html`<form class="dialog" id="dialog-relay" onSubmit=${submit} onKeyDown=${onKey}>
    <p class="confirm">${t(dialog.kind === 'trip' ? 'confirmTrip' : 'confirmClose', { meter: meter.id })}</p>
    <label>${t('reason')}<input id="relay-reason" ref=${first} placeholder=${t('reasonHint')} value=${dialog.reason} onInput=${(e) => setDialog({ ...dialog, reason: e.target.value })} /></label>
    ${dialog.error ? html`<p class="error" role="alert">${dialog.error}</p>` : null}
    <button type="submit" id="dialog-ok" class=${dialog.kind === 'trip' ? 'danger' : ''}>${t('confirm')}</button>
    <button type="button" onClick=${cancel}>${t('cancel')}</button>
  </form>`;
}

function Ledger({ entries }) {
  if (entries.length === 0) return html`<p>${t('nothing')}</p>`;
  return html`<table class="grid" id="ledger"><thead><tr>
      <th>${t('time')}</th><th>${t('channel')}</th><th>${t('kind')}</th><th>${t('amount')}</th><th>${t('state')}</th><th>${t('operator')}</th><th>${t('count')}</th>
    </tr></thead><tbody>
    ${entries.map(
      (e) => html`<tr data-request=${e.requestId} class=${e.state === 'rejected' || e.state === 'failed' ? 'refused' : ''}>
        <td>${when(e.createdAt)}</td><td>${e.channel}</td><td>${e.kind}</td><td class="num">${ledgerAmount(e.unit, e.amount)}</td>
        <td title=${e.error?.message ?? ''}>${e.state}</td><td>${e.operator ?? ''}</td><td>${e.purchaseCount ?? ''}</td>
      </tr>`,
    )}
  </tbody></table>`;
}

function Charts({ id }) {
  const [points, setPoints] = useState(null);
  useEffect(() => {
    get(`/api/meters/${encodeURIComponent(id)}/readings?days=7`)
      .then(setPoints)
      .catch(() => setPoints([]));
  }, [id]);
  if (points === null) return null;
  if (points.length === 0) return html`<p>${t('noReadings')}</p>`;
  return html`<h2>${t('charts')}</h2><div class="charts">
    <${Chart} title=${t('energy')} points=${points} field="energyKwh" />
    <${Chart} title=${t('balanceChart')} points=${points} field="balance" />
    <${Chart} title=${t('voltage')} points=${points} field="voltage" />
  </div>`;
}

function Chart({ title, points, field }) {
  const el = useRef(null);
  useEffect(() => {
    const rows = points.filter((p) => p[field] !== null);
    if (!el.current || rows.length === 0) return;
    const plot = new uPlot(
      {
        title,
        width: Math.min(460, el.current.clientWidth || 460),
        height: 180,
        // The gateway's time zone, not the browser's: the counter and the books count the same days.
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), gatewayTimeZone()),
        series: [{}, { label: title, stroke: '#1f6feb', value: (_u, v) => (v === null ? '—' : two(v)) }],
        axes: [{}, { size: 70, values: (_u, vals) => vals.map((v) => two(v)) }],
      },
      [rows.map((p) => p.t / 1000), rows.map((p) => p[field])],
      el.current,
    );
    return () => plot.destroy();
  }, [points, field]);
  return html`<div class="chart" ref=${el} data-chart=${field}></div>`;
}

const REASONS = ['arrears', 'safety', 'customer-request', 'other'];
// Notices that can still be cancelled (a cut one ends by a restore).
const OPEN_STATES = ['notified', 'approved'];

/**
 * 停(限)电 and 复电: a cut needs a notice and a second person's approval (the gateway cuts at or after the notice's
 * earliest time); restoring closes the relay and ends the notice. The station's supply commands, through the router.
 */
function Supply({ id, me }) {
  const [notices, setNotices] = useState(null);
  const [form, setForm] = useState(null);
  const [msg, setMsg] = useState(null);
  const may = me.role === 'technician';
  const load = () =>
    get(`/api/meters/${encodeURIComponent(id)}/supply`)
      .then(setNotices)
      .catch(() => setNotices([]));
  useEffect(() => {
    load();
  }, [id]);
  const act = async (path, body) => {
    setMsg(null);
    try {
      const r = await post(path, body);
      setMsg({ ok: r.status === 'done', text: r.status === 'done' ? t('done') : t('running') });
      setForm(null);
    } catch (e) {
      setMsg({ ok: false, text: e instanceof ApiError ? e.message : String(e) });
    }
    load();
  };
  if (notices === null) return null;
  const submit = (e) => {
    e.preventDefault();
    if (!form.confirming) return setForm({ ...form, confirming: true });
    if (form.kind === 'notice')
      act(`/api/meters/${encodeURIComponent(id)}/supply/notice`, { requestId: form.requestId, reason: form.reason, note: form.note });
    else act(`/api/meters/${encodeURIComponent(id)}/supply/restore`, { requestId: form.requestId, reason: form.reason });
  };
  return html`<section id="supply">
    <h2>${t('supply')}</h2>
    <div class="actions">
      <button id="supply-notice" class="danger" disabled=${!may} onClick=${() => setForm({ kind: 'notice', requestId: requestId(), reason: 'arrears', note: '' })}>${t('supplyNotice')}</button>
      <button id="supply-restore" disabled=${!may} onClick=${() => setForm({ kind: 'restore', requestId: requestId(), reason: '' })}>${t('supplyRestore')}</button>
    </div>
    ${
      form
        ? html`<form class="dialog" id="supply-form" onSubmit=${submit} onKeyDown=${(e) => e.key === 'Escape' && setForm(null)}>
          ${
            form.kind === 'notice'
              ? html`<label>${t('reason')}<select id="supply-reason" value=${form.reason} disabled=${form.confirming} onChange=${(e) => setForm({ ...form, reason: e.target.value })}>
                  ${REASONS.map((r) => html`<option value=${r}>${t(`supply-${r}`)}</option>`)}</select></label>
                <label>${t('supplyNote')}<input id="supply-note" value=${form.note} disabled=${form.confirming} onInput=${(e) => setForm({ ...form, note: e.target.value })} /></label>`
              : html`<label>${t('reason')}<input id="supply-restore-reason" value=${form.reason} disabled=${form.confirming} onInput=${(e) => setForm({ ...form, reason: e.target.value })} /></label>`
          }
          ${form.confirming ? html`<p class="confirm" id="supply-confirm">${t(form.kind === 'notice' ? 'confirmSupplyNotice' : 'confirmSupplyRestore', { meter: id })}</p>` : null}
          <button type="submit" id="supply-ok">${form.confirming ? t('confirm') : t('next')}</button>
          <button type="button" onClick=${() => setForm(null)}>${t('cancel')}</button>
        </form>`
        : null
    }
    ${msg ? html`<p class=${msg.ok ? 'ok' : 'error'} id="supply-result" role="status">${msg.text}</p>` : null}
    ${
      notices.length === 0
        ? html`<p>${t('nothing')}</p>`
        : html`<table class="grid" id="supply-notices"><thead><tr><th>#</th><th>${t('reason')}</th><th>${t('state')}</th><th>${t('requestedBy')}</th><th>${t('earliestCut')}</th><th>${t('approvedBy')}</th><th></th></tr></thead><tbody>
          ${notices.map(
            (n) => html`<tr data-notice=${n.id} data-state=${n.state}>
              <td>${n.id}</td><td>${t(`supply-${n.reason}`)}</td><td data-field="state">${n.state}</td><td>${n.requestedBy}</td><td>${when(n.earliestAt)}</td><td>${n.approvedBy ?? ''}</td>
              <td>${
                OPEN_STATES.includes(n.state)
                  ? html`${n.state === 'notified' ? html`<button data-act="approve" disabled=${!may || n.requestedBy === me.user} title=${n.requestedBy === me.user ? t('secondPerson') : ''} onClick=${() => act(`/api/supply/${n.id}/approve`, { requestId: requestId() })}>${t('approve')}</button>` : null}
                    <button data-act="cancel" disabled=${!may} onClick=${() => act(`/api/supply/${n.id}/cancel`, { requestId: requestId() })}>${t('cancel')}</button>`
                  : null
              }</td>
            </tr>`,
          )}
        </tbody></table>`
    }
  </section>`;
}
