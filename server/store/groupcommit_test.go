package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"
)

// Concurrent transactions are committed in batches, each in its own
// savepoint: one that fails or panics is rolled back alone and its caller
// alone gets the error; the others commit.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if err := s.db.Exec(`CREATE TABLE grouped (k INTEGER PRIMARY KEY)`).Error; err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var batches []int
	s.group.onBatch = func(n int) {
		mu.Lock()
		batches = append(batches, n)
		mu.Unlock()
	}

	// Hold the writer until a full batch is queued behind it.
	release, started := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- s.transaction(ctx, func(tx *gorm.DB) error {
			close(started)
			<-release
			return tx.Exec(`INSERT INTO grouped (k) VALUES (-1)`).Error
		})
	}()
	<-started
	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.transaction(ctx, func(tx *gorm.DB) error {
				if err := tx.Exec(`INSERT INTO grouped (k) VALUES (?)`, i).Error; err != nil {
					return err
				}
				switch {
				case i%7 == 3:
					return fmt.Errorf("refused %d", i)
				case i%11 == 5:
					panic(fmt.Sprintf("broken %d", i))
				}
				return nil
			})
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); len(s.group.queue) < maxGroup; {
		if time.Now().After(deadline) {
			t.Fatalf("%d transactions queued, want %d", len(s.group.queue), maxGroup)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if err := <-held; err != nil {
		t.Fatal(err)
	}

	var keys []int
	if err := s.db.Raw(`SELECT k FROM grouped WHERE k >= 0 ORDER BY k`).Scan(&keys).Error; err != nil {
		t.Fatal(err)
	}
	stored := map[int]bool{}
	for _, k := range keys {
		stored[k] = true
	}
	for i, err := range errs {
		switch {
		case i%7 == 3:
			if err == nil || err.Error() != fmt.Sprintf("refused %d", i) {
				t.Errorf("transaction %d: err %v, want its own refusal", i, err)
			}
		case i%11 == 5:
			if err == nil || err.Error() != fmt.Sprintf("panic in a transaction: broken %d", i) {
				t.Errorf("transaction %d: err %v, want its own panic", i, err)
			}
		case err != nil:
			t.Errorf("transaction %d: %v", i, err)
		}
		if want := err == nil; stored[i] != want {
			t.Errorf("row %d stored %v, want %v", i, stored[i], want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	largest := 0
	for _, b := range batches {
		largest = max(largest, b)
	}
	if largest != maxGroup {
		t.Errorf("batches %v: want one of %d (they were queued together)", batches, maxGroup)
	}
}

// A caller whose context ended before its turn is skipped: nothing of it
// is written and it gets the context's error.
func TestGroupCommitSkipsCancelled(t *testing.T) {
	t.Parallel()
	s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.db.Exec(`CREATE TABLE grouped (k INTEGER PRIMARY KEY)`).Error; err != nil {
		t.Fatal(err)
	}
	release, started := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.transaction(t.Context(), func(tx *gorm.DB) error { close(started); <-release; return nil })
	}()
	<-started // the writer is busy: the next caller queues
	ctx, cancel := context.WithCancel(t.Context())
	ran := false
	skipped := make(chan error, 1)
	go func() {
		skipped <- s.transaction(ctx, func(tx *gorm.DB) error {
			ran = true
			return tx.Exec(`INSERT INTO grouped (k) VALUES (1)`).Error
		})
	}()
	for deadline := time.Now().Add(10 * time.Second); len(s.group.queue) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the second caller never queued")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-skipped; !errors.Is(err, context.Canceled) || ran {
		t.Errorf("cancelled caller: err %v, ran %v; want context.Canceled and not run", err, ran)
	}
}
