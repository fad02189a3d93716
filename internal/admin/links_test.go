package admin

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/otpgate/otpgate/store"
)

func TestEnrollLink(t *testing.T) {
	ctx := context.Background()
	l, st := newLocal(t)
	for _, n := range []string{"alice", "bob"} {
		if err := l.AddUser(ctx, NewUser{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	enrollNow(t, l, "bob", false)

	if _, err := l.IssueEnrollLink(ctx, "nobody", 0); !errors.Is(err, store.ErrUserNotFound) {
		t.Errorf("link for an unknown user: %v", err)
	}
	if _, err := l.IssueEnrollLink(ctx, "bob", 0); !errors.Is(err, ErrAlreadyEnrolled) {
		t.Errorf("link for an enrolled user: %v", err)
	}
	if _, err := l.IssueEnrollLink(ctx, "alice", 31*24*time.Hour); !errors.Is(err, ErrInvalidTTL) {
		t.Errorf("31 days: %v", err)
	}
	link, err := l.IssueEnrollLink(ctx, "alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(link.Token) != 22 || !link.Expires.Equal(testNow.Add(DefaultLinkTTL)) {
		t.Errorf("link = %+v", link)
	}
	stored, err := st.GetEnrollLink(ctx, HashLinkToken(link.Token))
	if err != nil || stored.User != "alice" {
		t.Fatalf("stored link %+v, %v", stored, err)
	}

	if _, err := l.OpenEnrollLink(ctx, "not-a-token"); !errors.Is(err, ErrLinkInvalid) {
		t.Errorf("unknown token: %v", err)
	}
	first, err := l.OpenEnrollLink(ctx, link.Token)
	if err != nil {
		t.Fatal(err)
	}
	again, err := l.OpenEnrollLink(ctx, link.Token)
	if err != nil || !bytes.Equal(first.Secret, again.Secret) || first.User != "alice" || first.Issuer != "Example VPN" {
		t.Fatalf("second visit shows another secret or account: %+v %v", again, err)
	}
	// The pending secret is not a token yet.
	if u, _ := st.Get(ctx, "alice"); u.TOTP != nil || u.PendingTOTP == nil {
		t.Fatalf("after the visits: totp %v pending %v", u.TOTP, u.PendingTOTP)
	}
	_, err = l.RedeemEnrollLink(ctx, link.Token, wrongCodeFor(t, first.Secret, 1))
	if !errors.Is(err, ErrWrongCode) {
		t.Fatalf("wrong code: %v", err)
	}
	codes, err := l.RedeemEnrollLink(ctx, link.Token, codeAt(t, first.Secret, testNow))
	if err != nil || len(codes) != RecoveryCodeCount {
		t.Fatalf("right code: %d codes, %v", len(codes), err)
	}
	if u, _ := st.Get(ctx, "alice"); u.TOTP == nil || !bytes.Equal(u.TOTP.Secret, first.Secret) {
		t.Fatal("the token shown on the page is not active")
	}
	if _, err := l.OpenEnrollLink(ctx, link.Token); !errors.Is(err, ErrLinkInvalid) {
		t.Errorf("used link opens: %v", err)
	}
	if _, err := l.RedeemEnrollLink(ctx, link.Token, codeAt(t, first.Secret, testNow)); !errors.Is(err, ErrLinkInvalid) {
		t.Errorf("used link redeems: %v", err)
	}
}

func TestEnrollLinkDies(t *testing.T) {
	ctx := context.Background()
	l, st := newLocal(t)
	if err := l.AddUser(ctx, NewUser{Name: "carol"}); err != nil {
		t.Fatal(err)
	}
	t.Run("five wrong codes", func(t *testing.T) {
		link, err := l.IssueEnrollLink(ctx, "carol", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		le, err := l.OpenEnrollLink(ctx, link.Token)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= MaxLinkAttempts; i++ {
			_, err := l.RedeemEnrollLink(ctx, link.Token, wrongCodeFor(t, le.Secret, i))
			want := ErrWrongCode
			if i == MaxLinkAttempts {
				want = ErrLinkInvalid
			}
			if !errors.Is(err, want) {
				t.Fatalf("wrong code %d: %v, want %v", i, err, want)
			}
		}
		if _, err := l.RedeemEnrollLink(ctx, link.Token, codeAt(t, le.Secret, testNow)); !errors.Is(err, ErrLinkInvalid) {
			t.Fatalf("right code after the link died: %v", err)
		}
		if u, _ := st.Get(ctx, "carol"); u.TOTP != nil || u.PendingTOTP != nil {
			t.Fatalf("dead link left totp %v pending %v", u.TOTP, u.PendingTOTP)
		}
	})
	t.Run("expired", func(t *testing.T) {
		link, err := l.IssueEnrollLink(ctx, "carol", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		later := *l
		later.now = func() time.Time { return testNow.Add(time.Hour) }
		if _, err := later.OpenEnrollLink(ctx, link.Token); !errors.Is(err, ErrLinkInvalid) {
			t.Fatalf("expired link: %v", err)
		}
		if n, err := later.PruneEnrollLinks(ctx); err != nil || n != 1 {
			t.Fatalf("prune = %d, %v", n, err)
		}
	})
	t.Run("replaced", func(t *testing.T) {
		old, err := l.IssueEnrollLink(ctx, "carol", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.IssueEnrollLink(ctx, "carol", time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := l.OpenEnrollLink(ctx, old.Token); !errors.Is(err, ErrLinkInvalid) {
			t.Fatalf("replaced link: %v", err)
		}
	})
}
