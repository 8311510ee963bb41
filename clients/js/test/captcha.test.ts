import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodeCaptchaSolution, searchNumber, solveCaptcha } from '../src/captcha.js';

function challengeFor(number: number, salt: string, maxnumber: number) {
  const challenge = createHash('sha256').update(salt + String(number)).digest('hex');
  return { algorithm: 'SHA-256', challenge, maxnumber, salt, signature: 'f'.repeat(64) };
}

describe('ALTCHA v1 solver', () => {
  it('finds the number, also with salts longer than one SHA-256 block', async () => {
    for (const [n, salt] of [
      [0, 'abc?expires=1'],
      [4242, 'a1b2c3d4e5f60718293a4b5c6d7e8f90?expires=1893456000'],
      [99_999, 'x'.repeat(70) + '?expires=1893456000'],
    ] as const) {
      const c = challengeFor(n, salt, 100_000);
      const captcha = await solveCaptcha(c, { worker: false });
      const decoded = JSON.parse(Buffer.from(captcha, 'base64').toString('utf8'));
      expect(decoded).toEqual({
        algorithm: 'SHA-256',
        challenge: c.challenge,
        number: n,
        salt,
        signature: c.signature,
      });
    }
  });

  it('matches node:crypto for every number of a range', async () => {
    const salt = 'salt?expires=2000000000';
    for (let n = 0; n < 300; n += 7) {
      const c = challengeFor(n, salt, 1000);
      expect(await searchNumber(salt, c.challenge, 0, 1001, 1000)).toBe(n);
    }
  });

  it('refuses a challenge without a solution and stops when aborted', async () => {
    const c = challengeFor(500, 's', 100);
    await expect(solveCaptcha(c, { worker: false })).rejects.toThrow(/no solution/);
    const controller = new AbortController();
    controller.abort();
    await expect(solveCaptcha(challengeFor(5, 's', 10), { signal: controller.signal })).rejects.toThrow(/aborted/);
  });

  it('encodes the solution as base64 JSON', () => {
    const c = challengeFor(7, 'é?expires=1', 10);
    const decoded = JSON.parse(Buffer.from(encodeCaptchaSolution(c, 7), 'base64').toString('utf8'));
    expect(decoded.salt).toBe('é?expires=1');
    expect(decoded.number).toBe(7);
  });
});
