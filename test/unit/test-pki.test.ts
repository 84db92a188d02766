/* The test PKI itself: what the TLS tests rely on it to make. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestPki } from '../helpers/test-pki';

test('the test PKI issues leaves under an intermediate, with names, key types and an expired one', () => {
  const pki = new TestPki();
  const leaf = pki.leaf('mx1', { names: ['mx1.example.test', 'mail.example.test'] });
  assert.equal(leaf.x509.checkHost('mail.example.test'), 'mail.example.test');
  assert.ok(leaf.x509.checkIssued(pki.intermediate.x509));
  assert.ok(pki.intermediate.x509.checkIssued(pki.root.x509));
  assert.equal(leaf.chain, leaf.cert + pki.intermediate.cert);
  const rsa = pki.leaf('rsa', { names: ['rsa.example.test'], keyType: 'rsa', issuer: 'root' });
  assert.equal(rsa.x509.publicKey.asymmetricKeyType, 'rsa');
  assert.ok(rsa.x509.checkIssued(pki.root.x509));
  const old = pki.leaf('old', { names: ['old.example.test'], days: -1 });
  assert.ok(new Date(old.x509.validTo).getTime() < Date.now());
  assert.ok(old.x509.checkIssued(pki.intermediate.x509));
  const self = pki.leaf('self', { names: ['self.example.test'], issuer: 'self' });
  assert.ok(self.x509.verify(self.x509.publicKey));
});
