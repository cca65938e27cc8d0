import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, get, post, requestId } from '../api.js';
import { t, when } from '../i18n.js';
import { useLive } from '../live.js';

export function AlertsPage({ me }) {
  const live = useLive();
  const [data, setData] = useState(null);
  const [acking, setAcking] = useState(null);
  const [error, setError] = useState('');
  const load = () =>
    get('/api/alerts')
      .then(setData)
      .catch((e) => setError(e.message));
  const activeCount = live.overview?.alerts?.active;
  useEffect(() => {
    load();
  }, [activeCount]);
  if (!data) return html`<p>${error || t('loading')}</p>`;
  const ack = async (e) => {
    e.preventDefault();
    try {
      await post(`/api/alerts/${encodeURIComponent(acking.alertId)}/ack`, { requestId: acking.requestId, note: acking.note });
      setAcking(null);
      load();
    } catch (err) {
      setAcking({ ...acking, error: err instanceof ApiError ? err.message : String(err) });
    }
  };
  const row = (a, active) => html`<tr data-alert=${a.alertId} class=${active ? a.severity : ''}>
    <td><a href=${`#/meter/${encodeURIComponent(a.meterId)}`}>${a.meterId}</a></td><td>${a.kind}</td><td>${a.severity}</td>
    <td>${when(a.raisedAt)}</td><td>${a.clearedAt ? `${when(a.clearedAt)} · ${a.clearedBy ?? ''}` : ''}</td>
    <td>${active && me.role === 'technician' ? html`<button onClick=${() => setAcking({ alertId: a.alertId, requestId: requestId(), note: '' })}>${t('ack')}</button>` : null}</td>
  </tr>`;
  const head = html`<thead><tr><th>${t('meter')}</th><th>${t('kind')}</th><th>${t('severity')}</th><th>${t('raised')}</th><th>${t('cleared')}</th><th></th></tr></thead>`;
  return html`<section id="alerts-page">
    ${
      acking
        ? html`<form class="dialog" onSubmit=${ack}>
          <label>${t('note')} (${acking.alertId})<textarea id="ack-note" autofocus value=${acking.note} onInput=${(e) => setAcking({ ...acking, note: e.target.value })}></textarea></label>
          ${acking.error ? html`<p class="error" role="alert">${acking.error}</p>` : null}
          <button type="submit">${t('confirm')}</button><button type="button" onClick=${() => setAcking(null)}>${t('cancel')}</button>
        </form>`
        : null
    }
    <h2>${t('active')}</h2>
    ${data.active.length === 0 ? html`<p>${t('nothing')}</p>` : html`<table class="grid" id="alerts-active">${head}<tbody>${data.active.map((a) => row(a, true))}</tbody></table>`}
    <h2>${t('history')}</h2>
    <table class="grid" id="alerts-history">${head}<tbody>${data.history.filter((a) => a.clearedAt).map((a) => row(a, false))}</tbody></table>
  </section>`;
}
