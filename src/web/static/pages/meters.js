import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { get } from '../api.js';
import { balanceText, t, when } from '../i18n.js';
import { setRows, useLive } from '../live.js';

export function relayText(r) {
  return r === 'closed' ? t('closed') : r === 'open' ? t('open') : t('unknown');
}

export function MetersPage() {
  const live = useLive();
  const [q, setQ] = useState(sessionStorage.getItem('meterd.q') ?? '');
  const [error, setError] = useState('');
  useEffect(() => {
    get('/api/meters')
      .then(setRows)
      .catch((e) => setError(e.message));
  }, []);
  const needle = q.trim().toLowerCase();
  const rows = [...live.rows.values()].filter(
    (r) => needle === '' || [r.id, r.customerNo ?? '', r.bus, r.district ?? ''].some((s) => s.toLowerCase().includes(needle)),
  );
  const onInput = (e) => {
    setQ(e.target.value);
    sessionStorage.setItem('meterd.q', e.target.value);
  };
  return html`<section>
    <input id="meter-search" class="search" type="search" placeholder=${t('search')} value=${q} onInput=${onInput} autofocus />
    ${error ? html`<p class="error">${error}</p>` : null}
    <table class="grid meters" id="meters-table">
      <thead><tr><th>${t('meter')}</th><th>${t('customer')}</th><th>${t('bus')}</th><th>${t('balance')}</th><th>${t('relay')}</th><th>${t('lastRead')}</th><th>${t('alerts')}</th></tr></thead>
      <tbody>
        ${rows.slice(0, 500).map(
          (r) => html`<tr data-meter=${r.id} class=${r.online ? 'online' : 'offline'}>
            <td><a href=${`#/meter/${encodeURIComponent(r.id)}`}>${r.id}</a> <span class="dot" title=${r.online ? t('online') : t('offline')}></span></td>
            <td>${r.customerNo ?? ''}</td>
            <td>${r.bus}</td>
            <td class="num" data-field="balance">${balanceText(r.balance)}</td>
            <td data-field="relay" class=${r.relay === 'open' ? 'cut' : ''}>${relayText(r.relay)}</td>
            <td>${when(r.lastGoodReadAt)}</td>
            <td>${r.activeAlerts > 0 ? html`<span class="badge">${r.activeAlerts}</span>` : ''}</td>
          </tr>`,
        )}
      </tbody>
    </table>
    ${rows.length > 500 ? html`<p>${rows.length - 500} more: refine the search</p>` : null}
  </section>`;
}
