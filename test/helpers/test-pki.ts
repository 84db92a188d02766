/*
 * A throwaway PKI for TLS tests, made with openssl at test time: a root CA,
 * an intermediate, and leaf certificates with chosen names, validity and key
 * types. Nothing is shared between runs, and no private key ever leaves the
 * temp directory. Used by the outbound TLS tests (relay levels, DANE, MTA-STS)
 * and the TLS sinks they talk to.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';

export interface Issued {
  /** PEM of the certificate alone. */
  cert: string;
  /** PEM of the private key (PKCS#8). */
  key: string;
  /** PEM of the certificate followed by its issuers up to, not including, the root. */
  chain: string;
  certFile: string;
  keyFile: string;
  chainFile: string;
  x509: X509Certificate;
}

export interface LeafOptions {
  /** DNS names for subjectAltName; the first is also the CN. */
  names: string[];
  /** Days from now; negative makes an expired certificate. Default 2. */
  days?: number;
  /** 'rsa' (2048) or 'ec' (P-256). Default 'ec'. */
  keyType?: 'rsa' | 'ec';
  /** Issue from the intermediate (default) or straight from the root. */
  issuer?: 'intermediate' | 'root' | 'self';
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export class TestPki {
  readonly dir: string;
  readonly root: Issued;
  readonly intermediate: Issued;
  private serial = 1;

  constructor(name = 'mailveil test') {
    this.dir = mkdtempSync(join(tmpdir(), 'mv-pki-'));
    this.root = this.make('root', { subject: `/CN=${name} root CA`, ca: true, days: 30 });
    this.intermediate = this.make('intermediate', { subject: `/CN=${name} intermediate CA`, ca: true, days: 30, issuer: this.root });
  }

  /** A file with the root CA alone: what a client trusts (`ca_file`). */
  get caFile(): string {
    return this.root.certFile;
  }

  leaf(label: string, opts: LeafOptions): Issued {
    const issuer = opts.issuer === 'root' ? this.root : opts.issuer === 'self' ? undefined : this.intermediate;
    return this.make(label, { subject: `/CN=${opts.names[0]}`, names: opts.names, days: opts.days ?? 2, keyType: opts.keyType, issuer });
  }

  private make(label: string, o: { subject: string; ca?: boolean; days: number; names?: string[]; keyType?: 'rsa' | 'ec'; issuer?: Issued }): Issued {
    const d = this.dir;
    const keyFile = join(d, `${label}.key`);
    const certFile = join(d, `${label}.crt`);
    const csr = join(d, `${label}.csr`);
    const ext = join(d, `${label}.ext`);
    if ((o.keyType ?? 'ec') === 'rsa') openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', keyFile], d);
    else openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile], d);
    const lines = o.ca
      ? ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign', 'subjectKeyIdentifier=hash']
      : ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=serverAuth', 'subjectKeyIdentifier=hash'];
    if (o.names?.length) lines.push(`subjectAltName=${o.names.map((n) => `DNS:${n}`).join(',')}`);
    if (o.issuer) lines.push('authorityKeyIdentifier=keyid');
    writeFileSync(ext, lines.join('\n') + '\n');
    openssl(['req', '-new', '-key', keyFile, '-subj', o.subject, '-out', csr], d);
    const serial = `${(this.serial++).toString(16).padStart(4, '0')}${Date.now().toString(16)}`;
    if (o.days < 0 && o.issuer) {
      // openssl 3.0's `x509 -req` cannot backdate; `ca` can (-startdate/-enddate).
      this.signBackdated(o.issuer, csr, ext, certFile, serial, o.days);
    } else {
      const signer = o.issuer ? ['-CA', o.issuer.certFile, '-CAkey', o.issuer.keyFile] : ['-key', keyFile];
      openssl(['x509', '-req', '-in', csr, ...signer, '-set_serial', `0x${serial}`, '-extfile', ext, '-days', String(o.days), '-sha256', '-out', certFile], d);
    }
    const cert = readFileSync(certFile, 'utf8');
    const chain = o.issuer && o.issuer !== this.root ? cert + o.issuer.chain : cert;
    const chainFile = join(d, `${label}.chain.crt`);
    writeFileSync(chainFile, chain);
    return { cert, key: readFileSync(keyFile, 'utf8'), chain, certFile, keyFile, chainFile, x509: new X509Certificate(cert) };
  }

  private signBackdated(issuer: Issued, csr: string, ext: string, out: string, serial: string, days: number): void {
    const d = this.dir;
    const cnf = join(d, `ca-${serial}.cnf`);
    writeFileSync(join(d, `index-${serial}.txt`), '');
    writeFileSync(join(d, `serial-${serial}`), serial.length % 2 ? `0${serial}\n` : `${serial}\n`);
    writeFileSync(
      cnf,
      [
        '[ca]',
        'default_ca = test',
        '[test]',
        `database = ${join(d, `index-${serial}.txt`)}`,
        `serial = ${join(d, `serial-${serial}`)}`,
        `new_certs_dir = ${d}`,
        'default_md = sha256',
        'policy = any',
        'unique_subject = no',
        'copy_extensions = none',
        '[any]',
        'commonName = supplied',
      ].join('\n') + '\n',
    );
    openssl(['ca', '-batch', '-notext', '-config', cnf, '-cert', issuer.certFile, '-keyfile', issuer.keyFile, '-in', csr, '-out', out, '-extfile', ext, '-startdate', this.date(-10), '-enddate', this.date(days)], d);
  }

  private date(days: number): string {
    // openssl's YYYYMMDDHHMMSSZ
    const t = new Date(Date.now() + days * 86400_000);
    return t.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  }
}
