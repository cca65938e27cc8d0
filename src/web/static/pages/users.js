import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, del, get, post } from '../api.js';
import { t, when } from '../i18n.js';

export function UsersPage({ me }) {
  const [users, setUsers] = useState([]);
  const [form, setForm] = useState({ name: '', role: 'cashier', password: '' });
  const [error, setError] = useState('');
  const load = () =>
    get('/api/users')
      .then(setUsers)
      .catch((e) => setError(e.message));
  useEffect(() => {
    load();
  }, []);
  const add = async (e) => {
    e.preventDefault();
    try {
      await post('/api/users', form);
      setForm({ name: '', role: 'cashier', password: '' });
      setError('');
      load();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  const remove = async (name) => {
    if (!confirm(`${t('remove')} ${name}?`)) return;
    await del(`/api/users/${encodeURIComponent(name)}`).catch((err) => setError(err.message));
    load();
  };
  return html`<section id="users-page">
    <table class="grid"><thead><tr><th>${t('user')}</th><th>${t('role')}</th><th></th><th></th></tr></thead><tbody>
      ${users.map(
        (
          u,
        ) => html`<tr><td>${u.name}</td><td>${u.role}</td><td>${u.lockedUntil && u.lockedUntil > Date.now() ? `🔒 ${when(u.lockedUntil)}` : ''}</td>
        <td>${u.name === me.user ? '' : html`<button onClick=${() => remove(u.name)}>${t('remove')}</button>`}</td></tr>`,
      )}
    </tbody></table>
    <form class="inline" onSubmit=${add}>
      <input placeholder=${t('user')} value=${form.name} onInput=${(e) => setForm({ ...form, name: e.target.value })} />
      <select value=${form.role} onChange=${(e) => setForm({ ...form, role: e.target.value })}>
        <option value="cashier">cashier</option><option value="technician">technician</option><option value="admin">admin</option>
      </select>
      <input type="password" placeholder=${t('password')} autocomplete="new-password" value=${form.password} onInput=${(e) => setForm({ ...form, password: e.target.value })} />
      <button type="submit">${t('add')}</button>
    </form>
    ${error ? html`<p class="error">${error}</p>` : null}
  </section>`;
}
