import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, get, post, requestId } from '../api.js';
import { ledgerAmount, t, when } from '../i18n.js';
import { useLive } from '../live.js';

const STATES = ['planned', 'pending', 'applied', 'needs-attention', 'expired', 'cancelled'];

/** Each allowance round's progress, and the rows a person must decide on: retry, carry over, or cancel. */
export function AllowancesPage({ me }) {
  const live = useLive();
  const [data, setData] = useState(null);
  const [error, setError] = useState('');
  const [deciding, setDeciding] = useState(null);
  const load = () =>
    get('/api/allowances')
      .then(setData)
      .catch((e) => setError(e.message));
  const inProgress = live.overview?.batches?.inProgress;
  useEffect(() => {
    load();
  }, [inProgress]);
  if (!data) return html`<p>${error || t('loading')}</p>`;
  const may = me.role === 'cashier' || me.role === 'technician';
  const decide = async (e) => {
    e.preventDefault();
    const r = deciding;
    try {
      await post('/api/allowances/resolve', {
        requestId: r.requestId,
        allowance: r.row.allowance,
        term: r.row.term,
        round: r.row.round,
        meter: r.row.meterId,
        action: r.action,
      });
      setDeciding(null);
      load();
    } catch (err) {
      setDeciding({ ...r, error: err instanceof ApiError ? err.message : String(err) });
    }
  };
  return html`<section id="allowances-page">
    <h2>${t('rounds')}</h2>
    ${
      data.rounds.length === 0
        ? html`<p>${t('nothing')}</p>`
        : html`<table class="grid" id="allowance-rounds"><thead><tr><th>${t('allowanceCol')}</th><th>${t('round')}</th><th>${t('due')}</th>
          ${STATES.map((s) => html`<th>${t(`row-${s}`)}</th>`)}<th></th></tr></thead><tbody>
          ${data.rounds.map(
            (
              r,
            ) => html`<tr data-round=${`${r.allowance}/${r.term}/${r.round}`}><td>${r.allowance}</td><td>${r.term} · ${r.round}</td><td>${when(r.dueAt)}</td>
              ${STATES.map((s) => html`<td class="num" data-state=${s}>${r.counts[s] ?? 0}</td>`)}<td>${r.complete ? t('complete') : t('running')}</td></tr>`,
          )}
        </tbody></table>`
    }
    <h2>${t('needsPerson')}</h2>
    ${
      deciding
        ? html`<form class="dialog" onSubmit=${decide}>
          <p class="confirm">${t(`confirm-${deciding.action}`, { meter: deciding.row.meterId, amount: ledgerAmount(deciding.row.unit, deciding.row.amount) })}</p>
          ${deciding.error ? html`<p class="error" role="alert">${deciding.error}</p>` : null}
          <button type="submit" autofocus>${t('confirm')}</button><button type="button" onClick=${() => setDeciding(null)}>${t('cancel')}</button>
        </form>`
        : null
    }
    ${
      data.attention.length === 0
        ? html`<p id="allowance-attention-none">${t('nothing')}</p>`
        : html`<table class="grid" id="allowance-attention"><thead><tr><th>${t('meter')}</th><th>${t('round')}</th><th>${t('amount')}</th><th>${t('state')}</th><th>${t('reason')}</th><th></th></tr></thead><tbody>
          ${data.attention.map(
            (
              row,
            ) => html`<tr data-meter=${row.meterId}><td>${row.meterId}</td><td>${row.allowance} · ${row.round}</td><td class="num">${ledgerAmount(row.unit, row.amount)}</td>
              <td>${t(`row-${row.state}`)}</td><td>${row.reason ?? ''}</td>
              <td>${['retry', 'carry-over', 'cancel'].map(
                (action) =>
                  html`<button disabled=${!may} onClick=${() => setDeciding({ row, action, requestId: requestId() })}>${t(`act-${action}`)}</button> `,
              )}</td></tr>`,
          )}
        </tbody></table>`
    }
  </section>`;
}
