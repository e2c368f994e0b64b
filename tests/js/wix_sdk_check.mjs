// Drive the OFFICIAL Wix JS SDK (@wix/sdk + @wix/media, ApiKeyStrategy) against a media-mcp library.
//
// The only change from a real Wix setup is the API host:
//
//   createClient({ host: { apiBaseUrl: LIBRARY_HOST }, auth: ApiKeyStrategy({ apiKey, siteId }), modules })
//
// The SDK always builds https://<apiBaseUrl><path>, so the library must serve HTTPS; trust its
// self-signed certificate with NODE_EXTRA_CA_CERTS=<cert.pem> (TLS verification stays on).
//
// Env: LIBRARY_HOST ("127.0.0.1:PORT"), API_KEY, SITE_ID (optional), STEP_TIMEOUT_MS (optional).
// Prints one JSON object {ok, host, steps: [{step, ok, ms, ...}], requests: [...]} to stdout;
// exits 1 if any step failed. `fetch: tracedFetch` below only records the traffic; it is not needed.

import { ApiKeyStrategy, createClient } from '@wix/sdk';
import { files, folders } from '@wix/media';

const host = process.env.LIBRARY_HOST;
const apiKey = process.env.API_KEY;
const siteId = process.env.SITE_ID || undefined;
const stepTimeoutMs = Number(process.env.STEP_TIMEOUT_MS || 20000);

if (!host || !apiKey) {
  process.stdout.write(JSON.stringify({ ok: false, error: 'set LIBRARY_HOST and API_KEY' }) + '\n');
  process.exit(2);
}

// Every request the SDK or this script sends is bounded; a hung request fails its step.
const boundedFetch = (url, init = {}) => fetch(url, { ...init, signal: AbortSignal.timeout(stepTimeoutMs) });

// What the SDK put on the wire (method, path and query, status, which auth headers it sent).
const requests = [];
async function tracedFetch(url, init = {}) {
  const headers = Object.fromEntries(Object.entries(init.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  const entry = {
    method: init.method ?? 'GET',
    url: String(url).replace(`https://${host}`, ''),
    authorization: headers.authorization === apiKey,
    siteIdHeader: headers['wix-site-id'] ?? null,
  };
  requests.push(entry);
  const res = await boundedFetch(url, init);
  entry.status = res.status;
  return res;
}

const client = createClient({
  host: { apiBaseUrl: host },
  auth: ApiKeyStrategy({ apiKey, siteId }),
  modules: { files, folders },
  fetch: tracedFetch,
});

const steps = [];
const state = {};

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

function describeError(err) {
  return {
    name: err?.name,
    message: String(err?.message ?? err).slice(0, 2000),
    status: err?.status ?? err?.response?.status,
    details: err?.details,
  };
}

async function step(name, fn) {
  const started = Date.now();
  try {
    const info = (await fn()) ?? {};
    steps.push({ step: name, ok: true, ms: Date.now() - started, ...info });
    return true;
  } catch (err) {
    steps.push({ step: name, ok: false, ms: Date.now() - started, error: describeError(err) });
    return false;
  }
}

const stamp = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
const folderName = `sdk-check-${stamp}`;
const fileName = `sdk-check-${stamp}.txt`;
const renamed = `sdk-check-renamed-${stamp}.txt`;
const payload = new TextEncoder().encode(`media-mcp library, driven by the official Wix JS SDK (${stamp})\n`);

async function run() {
  await step('folders.createFolder', async () => {
    const res = await client.folders.createFolder(folderName);
    const folder = res.folder;
    check(folder && typeof folder._id === 'string' && folder._id, 'the created folder has an _id');
    check(folder.displayName === folderName, `displayName ${folder.displayName} == ${folderName}`);
    state.folderId = folder._id;
    return { folderId: folder._id, parentFolderId: folder.parentFolderId };
  });

  await step('folders.getFolder', async () => {
    const folder = await client.folders.getFolder(state.folderId);
    check(folder._id === state.folderId, 'getFolder returns the same folder');
    check(folder.displayName === folderName, 'getFolder returns its displayName');
    check(folder._createdDate instanceof Date, 'createdDate arrives as the SDK\'s _createdDate Date');
    return { displayName: folder.displayName, state: folder.state };
  });

  await step('folders.listFolders', async () => {
    const res = await client.folders.listFolders({ parentFolderId: 'media-root', paging: { limit: 50 } });
    check(Array.isArray(res.folders), 'folders is an array');
    check(res.folders.some((f) => f._id === state.folderId), 'the new folder is listed under media-root');
    return { count: res.folders.length, hasNextCursor: Boolean(res.nextCursor?.cursors?.next) };
  });

  await step('folders.searchFolders', async () => {
    const res = await client.folders.searchFolders({ search: folderName, rootFolder: 'MEDIA_ROOT' });
    check(res.folders.some((f) => f._id === state.folderId), 'search finds the new folder by name');
    return { count: res.folders.length };
  });

  await step('folders.updateFolder', async () => {
    const folder = await client.folders.updateFolder(state.folderId, { displayName: `${folderName}-x` });
    check(folder.displayName === `${folderName}-x`, `renamed to ${folder.displayName}`);
    const back = await client.folders.updateFolder(state.folderId, { displayName: folderName });
    check(back.displayName === folderName, 'renamed back');
    return { displayName: back.displayName };
  });

  await step('folders.listFolders (cursor paging)', async () => {
    for (const name of ['sub-b', 'sub-a']) {
      await client.folders.createFolder(name, { parentFolderId: state.folderId });
    }
    const options = { parentFolderId: state.folderId, sort: { fieldName: 'displayName', order: 'ASC' } };
    const first = await client.folders.listFolders({ ...options, paging: { limit: 1 } });
    check(first.folders.length === 1 && first.folders[0].displayName === 'sub-a', 'page 1 is sub-a');
    const cursor = first.nextCursor?.cursors?.next;
    check(typeof cursor === 'string' && cursor, 'page 1 has a next cursor');
    const second = await client.folders.listFolders({ parentFolderId: state.folderId, paging: { cursor } });
    check(second.folders.length === 1 && second.folders[0].displayName === 'sub-b', 'page 2 is sub-b');
    check(!second.nextCursor?.cursors?.next, 'page 2 is the last');
    return { pages: [first.folders[0].displayName, second.folders[0].displayName] };
  });

  await step('files.generateFileUploadUrl', async () => {
    const res = await client.files.generateFileUploadUrl('text/plain', {
      fileName,
      parentFolderId: state.folderId,
      labels: ['sdk-check'],
    });
    check(typeof res.uploadUrl === 'string' && res.uploadUrl.startsWith('https://'), 'uploadUrl is https');
    state.uploadUrl = res.uploadUrl;
    return { uploadUrlHost: new URL(res.uploadUrl).host };
  });

  await step('PUT uploadUrl (no auth)', async () => {
    const url = new URL(state.uploadUrl);
    url.searchParams.set('filename', fileName);
    const res = await boundedFetch(url, { method: 'PUT', body: payload, headers: { 'Content-Type': 'text/plain' } });
    const text = await res.text();
    check(res.status === 200, `upload answered ${res.status}: ${text.slice(0, 500)}`);
    const file = JSON.parse(text).file;
    check(file && file.id, 'the upload answer carries the file descriptor');
    state.fileId = file.id;
    return { status: res.status, fileId: file.id, sizeInBytes: file.sizeInBytes };
  });

  await step('files.getFileDescriptor', async () => {
    const file = await client.files.getFileDescriptor(state.fileId);
    check(file._id === state.fileId, 'same file id');
    check(file.displayName === fileName, `displayName ${file.displayName}`);
    check(file.parentFolderId === state.folderId, 'the file is in the new folder');
    check(Number(file.sizeInBytes) === payload.length, `sizeInBytes ${file.sizeInBytes} == ${payload.length}`);
    check(file.mediaType === 'DOCUMENT', `mediaType ${file.mediaType}`);
    check(file._createdDate instanceof Date, 'createdDate arrives as the SDK\'s _createdDate Date');
    return { mediaType: file.mediaType, operationStatus: file.operationStatus, labels: file.labels };
  });

  await step('files.searchFiles', async () => {
    const res = await client.files.searchFiles({ search: `sdk-check-${stamp}`, rootFolder: 'MEDIA_ROOT' });
    check(res.files.some((f) => f._id === state.fileId), 'search finds the uploaded file');
    return { count: res.files.length };
  });

  await step('files.listFiles', async () => {
    const res = await client.files.listFiles({
      parentFolderId: state.folderId,
      mediaTypes: ['DOCUMENT', 'IMAGE'],
      sort: { fieldName: 'displayName', order: 'ASC' },
      paging: { limit: 10 },
    });
    check(res.files.length === 1 && res.files[0]._id === state.fileId, 'the folder lists exactly the new file');
    return { count: res.files.length };
  });

  await step('files.updateFileDescriptor', async () => {
    const file = await client.files.updateFileDescriptor({ _id: state.fileId, displayName: renamed });
    check(file._id === state.fileId, 'same file id');
    check(file.displayName === renamed, `renamed to ${file.displayName}`);
    const again = await client.files.getFileDescriptor(state.fileId);
    check(again.displayName === renamed, 'the new name is stored');
    return { displayName: file.displayName };
  });

  await step('files.generateFileDownloadUrl + GET', async () => {
    const res = await client.files.generateFileDownloadUrl(state.fileId, { downloadFileName: renamed });
    check(res.downloadUrls.length === 1 && res.downloadUrls[0].assetKey === 'src', 'one src download URL');
    const got = await boundedFetch(res.downloadUrls[0].url);
    check(got.status === 200, `download answered ${got.status}`);
    const bytes = new Uint8Array(await got.arrayBuffer());
    check(bytes.length === payload.length && bytes.every((b, i) => b === payload[i]), 'downloaded bytes match');
    return { status: got.status, bytes: bytes.length, contentDisposition: got.headers.get('content-disposition') };
  });

  await step('files.bulkDeleteFiles', async () => {
    const res = await client.files.bulkDeleteFiles([state.fileId]);
    check(res === undefined, 'bulkDeleteFiles resolves to nothing');
    const file = await client.files.getFileDescriptor(state.fileId);
    check(file.state === 'DELETED', `state after delete: ${file.state}`);
    return { state: file.state };
  });

  await step('files.listDeletedFiles', async () => {
    const res = await client.files.listDeletedFiles({ paging: { limit: 100 } });
    check(res.files.some((f) => f._id === state.fileId), 'the deleted file is in the trash bin');
    return { count: res.files.length };
  });

  await step('files.bulkRestoreFilesFromTrashBin', async () => {
    await client.files.bulkRestoreFilesFromTrashBin([state.fileId]);
    const file = await client.files.getFileDescriptor(state.fileId);
    check(file.state === 'OK', `state after restore: ${file.state}`);
    check(file.parentFolderId === state.folderId, 'restored into its folder');
    return { state: file.state };
  });

  await step('folders.bulkDeleteFolders', async () => {
    await client.folders.bulkDeleteFolders([state.folderId]);
    const folder = await client.folders.getFolder(state.folderId);
    check(folder.state === 'DELETED', `folder state after delete: ${folder.state}`);
    const res = await client.folders.listDeletedFolders({});
    check(res.folders.some((f) => f._id === state.folderId), 'the folder is in the trash bin');
    return { state: folder.state };
  });

  await step('folders.bulkRestoreFoldersFromTrashBin', async () => {
    await client.folders.bulkRestoreFoldersFromTrashBin([state.folderId]);
    const folder = await client.folders.getFolder(state.folderId);
    check(folder.state === 'OK', `folder state after restore: ${folder.state}`);
    await client.folders.bulkDeleteFolders([state.folderId], { permanent: true });
    return { state: folder.state };
  });

  await step('a wrong API key fails (UNAUTHENTICATED)', async () => {
    const stranger = createClient({
      host: { apiBaseUrl: host },
      auth: ApiKeyStrategy({ apiKey: `${apiKey}-wrong`, siteId }),
      modules: { files },
      fetch: boundedFetch,
    });
    let caught;
    try {
      await stranger.files.listFiles({});
    } catch (err) {
      caught = err;
    }
    check(caught !== undefined, 'the call rejected');
    check(caught.status === 401, `status ${caught.status}`);
    const code = caught.details?.applicationError?.code;
    check(code === 'UNAUTHENTICATED', `code ${code}`);
    return { status: caught.status, code };
  });

  await step('files.getFileDescriptor (unknown id) fails', async () => {
    const unknown = 'ffffffffffffffffffffffffffffffff.txt';
    let caught;
    try {
      await client.files.getFileDescriptor(unknown);
    } catch (err) {
      caught = err;
    }
    check(caught !== undefined, 'the call rejected');
    const details = caught.details ?? {};
    check(details.applicationError?.code === 'RESOURCE_NOT_FOUND', `code ${details.applicationError?.code}`);
    check(caught.status === 400 || caught.status === 404, `status ${caught.status}`);
    return { status: caught.status, code: details.applicationError.code, message: caught.message.slice(0, 300) };
  });
}

const timer = setTimeout(() => {
  steps.push({ step: 'overall', ok: false, error: { message: 'the check did not finish in time' } });
  finish();
}, stepTimeoutMs * 30);

function finish() {
  clearTimeout(timer);
  const ok = steps.length > 0 && steps.every((s) => s.ok);
  process.stdout.write(JSON.stringify({ ok, host, steps, requests }, null, 2) + '\n');
  process.exit(ok ? 0 : 1);
}

run().then(finish, (err) => {
  steps.push({ step: 'runner', ok: false, error: describeError(err) });
  finish();
});
