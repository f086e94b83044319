// A persistent oidc-provider adapter: an append-only JSON-lines journal, replayed into memory
// at start. Every mutation (upsert, consume, destroy, revokeByGrantId) is appended and
// fdatasync'ed before the call returns, so anything the provider has answered with survives a
// SIGKILL. Follows oidc-provider's adapter interface (lib/adapters/memory_adapter.js).
import * as fs from 'node:fs';

const records = new Map(); // "Model:id" -> { payload, exp (epoch seconds or null) }
const grants = new Map(); // grantId -> Set of "Model:id"
const uids = new Map(); // Session uid -> id
const userCodes = new Map(); // userCode -> "Model:id"
let fd = null;

const grantable = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);
const now = () => Math.floor(Date.now() / 1000);

function apply(op) {
  switch (op.op) {
    case 'upsert': {
      const key = `${op.model}:${op.id}`;
      records.set(key, { payload: op.payload, exp: op.exp });
      if (op.model === 'Session' && op.payload.uid) uids.set(op.payload.uid, op.id);
      if (grantable.has(op.model) && op.payload.grantId) {
        if (!grants.has(op.payload.grantId)) grants.set(op.payload.grantId, new Set());
        grants.get(op.payload.grantId).add(key);
      }
      if (op.payload.userCode) userCodes.set(op.payload.userCode, key);
      break;
    }
    case 'consume': {
      const r = records.get(`${op.model}:${op.id}`);
      if (r) r.payload.consumed = op.at;
      break;
    }
    case 'destroy':
      records.delete(`${op.model}:${op.id}`);
      break;
    case 'revokeByGrantId': {
      for (const key of grants.get(op.grantId) || []) records.delete(key);
      grants.delete(op.grantId);
      break;
    }
    default:
      throw new Error(`journal: unknown op ${op.op}`);
  }
}

function append(op) {
  apply(op);
  fs.writeSync(fd, `${JSON.stringify(op)}\n`);
  fs.fdatasyncSync(fd);
}

export function openJournal(file) {
  if (fs.existsSync(file)) {
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    let n = 0;
    for (const line of lines) {
      if (!line) continue;
      try {
        apply(JSON.parse(line));
        n += 1;
      } catch (e) {
        // A torn last line after a crash mid-write: the call that wrote it never returned.
        console.error(`journal: skipping unreadable line ${n + 1}: ${e.message}`);
      }
    }
    console.log(`journal: replayed ${n} records from ${file}`);
  }
  fd = fs.openSync(file, 'a');
}

export default class JournalAdapter {
  constructor(model) {
    this.model = model;
  }

  async upsert(id, payload, expiresIn) {
    append({ op: 'upsert', model: this.model, id, payload, exp: expiresIn ? now() + expiresIn : null });
  }

  async find(id) {
    const r = records.get(`${this.model}:${id}`);
    if (!r) return undefined;
    if (r.exp !== null && r.exp <= now()) return undefined;
    return structuredClone(r.payload);
  }

  async findByUid(uid) {
    const id = uids.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const key = userCodes.get(userCode);
    if (!key) return undefined;
    return this.find(key.slice(this.model.length + 1));
  }

  async consume(id) {
    append({ op: 'consume', model: this.model, id, at: now() });
  }

  async destroy(id) {
    append({ op: 'destroy', model: this.model, id });
  }

  async revokeByGrantId(grantId) {
    append({ op: 'revokeByGrantId', model: this.model, grantId });
  }
}
