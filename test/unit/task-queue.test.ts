import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MinHeap } from '../../src/services/task-queue.js';

describe('MinHeap', () => {
  it('pops items in key order whatever the push order (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -1000, max: 1000 })), (keys) => {
        const heap = new MinHeap<number>();
        for (const k of keys) heap.push(k, k);
        const out: number[] = [];
        while (heap.size > 0) out.push(heap.pop()!);
        expect(out).toEqual([...keys].sort((a, b) => a - b));
      }),
    );
  });

  it('pushes and pops interleaved always give the smallest key left (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.option(fc.integer({ min: 0, max: 50 }), { nil: undefined })), (ops) => {
        const heap = new MinHeap<number>();
        const model: number[] = [];
        for (const op of ops) {
          if (op === undefined) {
            model.sort((a, b) => a - b);
            expect(heap.pop()).toBe(model.shift());
          } else {
            heap.push(op, op);
            model.push(op);
          }
          expect(heap.size).toBe(model.length);
          expect(heap.peekKey()).toBe(model.length ? Math.min(...model) : undefined);
        }
      }),
    );
  });

  it('peekKey shows the smallest key without removing it', () => {
    const heap = new MinHeap<string>();
    heap.push(5, 'e');
    heap.push(1, 'a');
    expect(heap.peekKey()).toBe(1);
    expect(heap.size).toBe(2);
    expect(heap.pop()).toBe('a');
  });
});
