package peertests

// Conformance with an independent signer: the AWS SDK for Go v2's SigV4 signer (the
// upstream of the signer the MongoDB Go driver vendors for MONGODB-AWS) signs the same STS
// GetCallerIdentity request the spec describes; our client-final must be byte-identical to
// the {a, d, t?} document built from its output.

import (
	. "github.com/libdocauth/libdocauth/bindings/go/docauth"

	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"math/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"go.mongodb.org/mongo-driver/v2/bson"
)

const stsBody = "Action=GetCallerIdentity&Version=2011-06-15"

// referenceClientFinal signs the request with the AWS SDK's signer, as the Go driver does.
func referenceClientFinal(t *testing.T, akid, secret, token string, s []byte, host, region string, when time.Time) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "https://"+host+"/", strings.NewReader(stsBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Content-Length", "43")
	req.Header.Set("X-MongoDB-Server-Nonce", base64.StdEncoding.EncodeToString(s))
	req.Header.Set("X-MongoDB-GS2-CB-Flag", "n")
	sum := sha256.Sum256([]byte(stsBody))
	creds := aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret, SessionToken: token}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "sts", region, when); err != nil {
		t.Fatal(err)
	}
	doc := bson.D{{Key: "a", Value: req.Header.Get("Authorization")}, {Key: "d", Value: req.Header.Get("X-Amz-Date")}}
	if tok := req.Header.Get("X-Amz-Security-Token"); tok != "" {
		doc = append(doc, bson.E{Key: "t", Value: tok})
	}
	out, err := bson.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func randomString(r *rand.Rand, alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.Intn(len(alphabet))]
	}
	return string(b)
}

func TestClientFinalMatchesAwsSdkSigner(t *testing.T) {
	hosts := []struct{ host, region string }{
		{"sts.amazonaws.com", "us-east-1"},
		{"sts.us-east-2.amazonaws.com", "us-east-2"},
		{"sts.eu-west-1.amazonaws.com", "eu-west-1"},
		{"sts.ap-northeast-1.amazonaws.com", "ap-northeast-1"},
		{"sts.cn-north-1.amazonaws.com.cn", "cn-north-1"},
		{"sts.cn-northwest-1.amazonaws.com.cn", "cn-northwest-1"},
		{"sts.us-gov-west-1.amazonaws.com", "us-gov-west-1"},
		{"sts.us-iso-east-1.c2s.ic.gov", "us-iso-east-1"},
		{"sts.eu-central-1.amazonaws.com", "eu-central-1"},
		{"sts-fips.us-west-1.amazonaws.com", "us-west-1"},
		{"localhost", "us-east-1"},
	}
	const upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	const secretChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	const tokenChars = secretChars + "="
	r := rand.New(rand.NewSource(20261125))
	for i := 0; i < 32; i++ {
		akid := "AKIA" + randomString(r, upperDigits, 16)
		secret := randomString(r, secretChars, 40)
		token := ""
		if i%2 == 1 {
			akid = "ASIA" + akid[4:]
			token = randomString(r, tokenChars, 16+r.Intn(1200))
		}
		nonce := make([]byte, 32)
		r.Read(nonce)
		s := append(append([]byte{}, nonce...), make([]byte, 32)...)
		r.Read(s[32:])
		h := hosts[i%len(hosts)]
		// Any second from 2001 to 2099, including day and year boundaries.
		when := time.Unix(978307200+r.Int63n(3124137600), 0).UTC()
		if i == 3 {
			when = time.Date(2024, 12, 31, 23, 59, 59, 0, time.UTC)
		}

		creds, err := NewCredentials(akid, secret, token)
		if err != nil {
			t.Fatal(err)
		}
		conv, err := NewAwsConversationForTesting(creds, nonce, when.Unix())
		creds.Close()
		if err != nil {
			t.Fatal(err)
		}
		first, err := conv.ClientFirst()
		if err != nil {
			t.Fatal(err)
		}
		wantFirst, _ := bson.Marshal(bson.D{{Key: "r", Value: bson.Binary{Subtype: 0, Data: nonce}}, {Key: "p", Value: int32(110)}})
		if !bytes.Equal(first, wantFirst) {
			t.Errorf("case %d: client-first %x, want %x", i, first, wantFirst)
		}
		got, err := conv.ClientFinal(serverFirst(t, s, h.host))
		conv.Close()
		if err != nil {
			t.Fatalf("case %d (%s): %v", i, h.host, err)
		}
		want := referenceClientFinal(t, akid, secret, token, s, h.host, h.region, when)
		if !bytes.Equal(got, want) {
			t.Errorf("case %d (host %s, %s, token %d bytes):\n got  %v\n want %v", i, h.host, when.Format(time.RFC3339), len(token), bson.Raw(got), bson.Raw(want))
		}
	}
}
