package wire_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/shoal-go/shoal/internal/replication/wire"
	"github.com/shoal-go/shoal/session"
)

func BenchmarkAppendApply(b *testing.B) {
	m := counterApply()
	buf := wire.AppendFrame(nil, 1, m)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = wire.AppendFrame(buf[:0], 1, m)
	}
}

func BenchmarkDecodeApply(b *testing.B) {
	payload := counterApply().AppendTo(nil)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := wire.Decode(wire.TypeApply, payload); err != nil {
			b.Fatal(err)
		}
	}
}

// batch returns 100 sessions of 5 attributes, about 350 bytes each.
func batch() *wire.Records {
	m := &wire.Records{}
	for i := range 100 {
		r := demoRecord()
		r.Key = fmt.Sprintf("%s%04d", testKey[:20], i)
		r.Attrs = []session.Attr{
			{Key: "cart", Value: make([]byte, 200)},
			{Key: "count", Value: cborOne},
			{Key: "csrf", Value: make([]byte, 33)},
			{Key: "prefs", Value: make([]byte, 40)},
			{Key: "user", Value: cborAlice},
		}
		r.AbsoluteDeadline = r.Created.Add(8 * time.Hour)
		m.Recs = append(m.Recs, r)
	}
	return m
}

func BenchmarkRecordsBatch(b *testing.B) {
	m := batch()
	frame := wire.AppendFrame(nil, 1, m)
	b.Run("Append", func(b *testing.B) {
		buf := make([]byte, 0, len(frame))
		b.SetBytes(int64(len(frame)))
		b.ReportAllocs()
		for b.Loop() {
			buf = wire.AppendFrame(buf[:0], 1, m)
		}
	})
	b.Run("Decode", func(b *testing.B) {
		payload := m.AppendTo(nil)
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := wire.Decode(wire.TypeRecords, payload); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSendParallel queues counter Applies from many goroutines to a
// Writer whose Run writes to io.Discard: the cost of Send (encoding and
// the checks Decode would make, under the queue's lock).
func BenchmarkSendParallel(b *testing.B) {
	w := wire.NewWriter(io.Discard, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		m := counterApply()
		for pb.Next() {
			if err := w.Send(1, m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	cancel()
	<-done
}
