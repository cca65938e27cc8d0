// The console's shell: sign-in, navigation by the URL hash, the language switch, and the pages.
import { html } from 'htm/preact';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, get, post, del, setCsrf } from './api.js';
import { getLang, setLang, setTimeZone, t } from './i18n.js';
import { connectLive, disconnectLive } from './live.js';
import { OverviewPage } from './pages/overview.js';
import { MetersPage } from './pages/meters.js';
import { MeterPage } from './pages/meter.js';
import { AlertsPage } from './pages/alerts.js';
import { UsersPage } from './pages/users.js';
import { BooksPage } from './pages/books.js';
import { CounterPage } from './pages/counter.js';
import { AllowancesPage } from './pages/allowances.js';
import { LinelossPage } from './pages/lineloss.js';

function useHash() {
  const [hash, setHash] = useState(location.hash || '#/overview');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/overview');
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function SignIn({ onSignedIn, noUsers }) {
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      onSignedIn(await post('/api/session', { name, password }));
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
      setPassword('');
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <h1>${t('title')}</h1>
    ${noUsers ? html`<p class="notice">${t('noUsers')}</p>` : null}
    <form onSubmit=${submit}>
      <label>${t('user')}<input id="signin-name" autocomplete="username" autofocus value=${name} onInput=${(e) => setName(e.target.value)} /></label>
      <label>${t('password')}<input id="signin-password" type="password" autocomplete="current-password" value=${password} onInput=${(e) => setPassword(e.target.value)} /></label>
      <button id="signin-submit" type="submit" disabled=${busy}>${t('signIn')}</button>
      ${error ? html`<p class="error" role="alert" id="signin-error">${error}</p>` : null}
    </form>
    <${LangSwitch} />
  </main>`;
}

function LangSwitch() {
  const [, bump] = useState(0);
  const flip = () => {
    setLang(getLang() === 'zh' ? 'en' : 'zh');
    bump((n) => n + 1);
    window.dispatchEvent(new Event('meterd:lang'));
  };
  return html`<button class="lang" id="lang-switch" type="button" onClick=${flip}>${getLang() === 'zh' ? 'English' : '中文'}</button>`;
}

function App() {
  const [me, setMe] = useState(undefined);
  const [noUsers, setNoUsers] = useState(false);
  const [, bump] = useState(0);
  const hash = useHash();

  useEffect(() => {
    get('/api/session')
      .then(signedIn)
      .catch((err) => {
        setNoUsers(err?.body?.users === 0);
        setMe(null);
      });
    const out = () => {
      disconnectLive();
      setMe(null);
    };
    const relang = () => bump((n) => n + 1);
    window.addEventListener('meterd:signed-out', out);
    window.addEventListener('meterd:lang', relang);
    return () => {
      window.removeEventListener('meterd:signed-out', out);
      window.removeEventListener('meterd:lang', relang);
    };
  }, []);

  function signedIn(session) {
    setCsrf(session.csrf);
    setTimeZone(session.timeZone);
    setMe(session);
    connectLive();
  }

  if (me === undefined) return html`<p class="loading">${t('loading')}</p>`;
  if (me === null) return html`<${SignIn} onSignedIn=${signedIn} noUsers=${noUsers} />`;

  const signOut = async () => {
    await del('/api/session').catch(() => {});
    disconnectLive();
    setMe(null);
  };
  const [, page, arg] = hash.split('/');
  const nav = [
    ['overview', t('overview')],
    ['meters', t('meters')],
    ...(me.role === 'cashier' ? [['counter', t('counter')]] : []),
    ...(me.role === 'cashier' || me.role === 'admin' ? [['books', t('books')]] : []),
    ['alerts', t('alerts')],
    ['allowances', t('allowances')],
    ['lineloss', t('lineloss')],
    ...(me.role === 'admin' ? [['users', t('users')]] : []),
  ];
  let body;
  switch (page) {
    case 'meters':
      body = html`<${MetersPage} />`;
      break;
    case 'meter':
      body = html`<${MeterPage} id=${decodeURIComponent(arg ?? '')} me=${me} />`;
      break;
    case 'alerts':
      body = html`<${AlertsPage} me=${me} />`;
      break;
    case 'counter':
      body = html`<${CounterPage} me=${me} />`;
      break;
    case 'books':
      body = html`<${BooksPage} me=${me} timeZone=${me.timeZone} />`;
      break;
    case 'allowances':
      body = html`<${AllowancesPage} me=${me} />`;
      break;
    case 'lineloss':
      body = html`<${LinelossPage} />`;
      break;
    case 'users':
      body = html`<${UsersPage} me=${me} />`;
      break;
    default:
      body = html`<${OverviewPage} />`;
  }
  return html`<div class="shell">
    <header>
      <strong>${t('title')}</strong> <span class="gw">${me.gatewayId}</span>
      <nav>${nav.map(([p, label]) => html`<a href=${`#/${p}`} class=${page === p || (p === 'meters' && page === 'meter') ? 'on' : ''} id=${`nav-${p}`}>${label}</a>`)}</nav>
      <span class="who" id="who">${me.user} · ${me.role}</span>
      <${LangSwitch} />
      <button type="button" id="sign-out" onClick=${signOut}>${t('signOut')}</button>
    </header>
    <main>${body}</main>
  </div>`;
}

render(html`<${App} />`, document.getElementById('app'));
