package mapping

// blockShift sets the size of the blocks of a blockList: 4096 elements.
const blockShift = 12

// blockList is an append-only list stored in fixed-size blocks. Growing a
// plain slice of n elements by append allocates about 5n in total (big
// slices grow by a quarter) and copies as much; a blockList allocates n,
// rounded up to a block, and never copies.
type blockList[T any] struct {
	blocks [][]T
	n      int
}

// len returns the number of elements.
func (l *blockList[T]) len() int { return l.n }

// at returns the i-th element, for reading or writing.
func (l *blockList[T]) at(i int) *T {
	return &l.blocks[i>>blockShift][i&(1<<blockShift-1)]
}

// push appends v.
func (l *blockList[T]) push(v T) {
	if l.n>>blockShift == len(l.blocks) {
		l.blocks = append(l.blocks, make([]T, 1<<blockShift))
	}
	*l.at(l.n) = v
	l.n++
}

// truncate drops the elements from n on.
func (l *blockList[T]) truncate(n int) {
	for i := n; i < l.n; i++ {
		var zero T
		*l.at(i) = zero // let the garbage collector have what they hold
	}
	l.n = n
}

// slice returns the elements in one new slice.
func (l *blockList[T]) slice() []T {
	out := make([]T, 0, l.n)
	for i := 0; i < l.n; i += 1 << blockShift {
		out = append(out, l.blocks[i>>blockShift][:min(1<<blockShift, l.n-i)]...)
	}
	return out
}
