/** A binary min-heap of items by a numeric key: the poller's next-due task in O(log n), not a scan of every task. */
export class MinHeap<T> {
  private readonly items: { key: number; value: T }[] = [];

  get size(): number {
    return this.items.length;
  }

  peekKey(): number | undefined {
    return this.items[0]?.key;
  }

  push(key: number, value: T): void {
    const items = this.items;
    items.push({ key, value });
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent]!.key <= key) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = { key, value };
  }

  pop(): T | undefined {
    const items = this.items;
    const top = items[0];
    if (!top) return undefined;
    const last = items.pop()!;
    if (items.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let smallest = i;
        const key = (k: number) => (k === i ? last.key : items[k]!.key);
        if (l < items.length && items[l]!.key < key(smallest)) smallest = l;
        if (r < items.length && items[r]!.key < key(smallest)) smallest = r;
        if (smallest === i) break;
        items[i] = items[smallest]!;
        i = smallest;
      }
      items[i] = last;
    }
    return top.value;
  }
}
