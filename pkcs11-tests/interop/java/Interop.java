// Java 17 SunPKCS11 against clusterhsm, configured by examples/java/clusterhsm.cfg.
// Usage: java -Dclusterhsm.module=/path/libclusterhsm.so Interop <cfg> <pin> <workdir> <step>
// Each step prints what it did and exits 0, or throws (non-zero exit). Results made with
// the token are checked with the JDK's software providers where that is possible.
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.*;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PSSParameterSpec;
import java.util.*;
import javax.crypto.*;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.IvParameterSpec;

public class Interop {
    static Provider p;
    static KeyStore ks;
    static char[] pin;
    static Path work;
    static final byte[] DATA = "data signed by Java through SunPKCS11".getBytes(StandardCharsets.UTF_8);

    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    public static void main(String[] args) throws Exception {
        p = Security.getProvider("SunPKCS11").configure(args[0]);
        Security.addProvider(p);
        pin = args[1].toCharArray();
        work = Path.of(args[2]);
        ks = KeyStore.getInstance("PKCS11", p);
        ks.load(null, pin);
        switch (args[3]) {
            case "keystore" -> keystore();
            case "sha256withrsa" -> sign("javarsa", "SHA256withRSA", null);
            case "rsassa-pss" -> sign("javarsa", "RSASSA-PSS",
                    new PSSParameterSpec("SHA-256", "MGF1", MGF1ParameterSpec.SHA256, 32, 1));
            case "sha256withecdsa" -> sign("javaec", "SHA256withECDSA", null);
            case "aes-cbc" -> aesCbc();
            case "aes-gcm" -> aesGcm();
            case "keypairgenerator" -> keyPairGenerator();
            case "keygenerator" -> keyGenerator();
            case "securerandom" -> secureRandom();
            default -> throw new IllegalArgumentException(args[3]);
        }
        System.out.println("OK " + args[3]);
    }

    // Every alias with its entry type; keys with certificates are PrivateKeyEntry with a
    // chain whose public key belongs to the private key.
    static void keystore() throws Exception {
        List<String> aliases = Collections.list(ks.aliases());
        Collections.sort(aliases);
        for (String a : aliases) {
            String kind = ks.isKeyEntry(a) ? (ks.getCertificate(a) != null ? "PrivateKeyEntry" : "SecretKeyEntry") : "TrustedCertificateEntry";
            System.out.println(a + ": " + kind + (ks.getCertificate(a) != null
                    ? " " + ((X509Certificate) ks.getCertificate(a)).getSubjectX500Principal() : ""));
        }
        for (String a : List.of("javarsa", "javaec")) {
            check(ks.entryInstanceOf(a, KeyStore.PrivateKeyEntry.class), a + " is a PrivateKeyEntry");
            Certificate[] chain = ks.getCertificateChain(a);
            check(chain != null && chain.length >= 1, a + " has a certificate chain");
            PrivateKey k = (PrivateKey) ks.getKey(a, pin);
            check(k.getAlgorithm().equals(chain[0].getPublicKey().getAlgorithm()), a + " key/cert algorithm");
        }
        check(ks.entryInstanceOf("aes1", KeyStore.SecretKeyEntry.class), "aes1 is a SecretKeyEntry");
    }

    static void sign(String alias, String alg, PSSParameterSpec pss) throws Exception {
        PrivateKey k = (PrivateKey) ks.getKey(alias, pin);
        PublicKey pub = ks.getCertificate(alias).getPublicKey();
        Signature s = Signature.getInstance(alg, p);
        if (pss != null) s.setParameter(pss);
        s.initSign(k);
        s.update(DATA);
        byte[] sig = s.sign();
        // verified by the JDK's software provider (not SunPKCS11) with the certificate's key
        Signature v = null;
        for (Provider sw : Security.getProviders()) {
            if (sw == p) continue;
            try { v = Signature.getInstance(alg, sw); break; } catch (NoSuchAlgorithmException e) { /* next */ }
        }
        check(v != null, "a software provider for " + alg);
        if (pss != null) v.setParameter(pss);
        v.initVerify(pub);
        v.update(DATA);
        check(v.verify(sig), alg + " signature verified by " + v.getProvider().getName());
        // and by the token, which must refuse other data
        Signature tv = Signature.getInstance(alg, p);
        if (pss != null) tv.setParameter(pss);
        tv.initVerify(pub);
        tv.update(DATA);
        check(tv.verify(sig), alg + " verified by SunPKCS11");
        tv.initVerify(pub);
        tv.update("other data".getBytes(StandardCharsets.UTF_8));
        check(!tv.verify(sig), alg + " rejects other data");
        System.out.println(alg + ": " + sig.length + "-byte signature verified by " + v.getProvider().getName());
    }

    // Token AES key (made by pkcs11-tool); the ciphertext is written for pkcs11-tool to
    // decrypt as well (AES-CBC-PAD with the same IV).
    static void aesCbc() throws Exception {
        SecretKey k = (SecretKey) ks.getKey("aes1", pin);
        byte[] iv = new byte[16];
        for (int i = 0; i < 16; i++) iv[i] = (byte) i;
        byte[] plain = new byte[100];
        new Random(7).nextBytes(plain);
        Cipher c = Cipher.getInstance("AES/CBC/PKCS5Padding", p);
        c.init(Cipher.ENCRYPT_MODE, k, new IvParameterSpec(iv));
        byte[] ct = c.doFinal(plain);
        check(ct.length == 112, "CBC-PAD ciphertext length");
        c.init(Cipher.DECRYPT_MODE, k, new IvParameterSpec(iv));
        check(Arrays.equals(c.doFinal(ct), plain), "CBC round trip");
        Files.write(work.resolve("java-cbc.plain"), plain);
        Files.write(work.resolve("java-cbc.ct"), ct);
        System.out.println("AES/CBC/PKCS5Padding: 100 bytes -> 112, round trip ok");
    }

    static void aesGcm() throws Exception {
        SecretKey k = (SecretKey) ks.getKey("aes1", pin);
        byte[] iv = new byte[12];
        new SecureRandom().nextBytes(iv);
        byte[] aad = "header".getBytes(StandardCharsets.UTF_8);
        Cipher c = Cipher.getInstance("AES/GCM/NoPadding", p);
        c.init(Cipher.ENCRYPT_MODE, k, new GCMParameterSpec(128, iv));
        c.updateAAD(aad);
        byte[] ct = c.doFinal(DATA);
        check(ct.length == DATA.length + 16, "GCM ciphertext + tag length");
        c.init(Cipher.DECRYPT_MODE, k, new GCMParameterSpec(128, iv));
        c.updateAAD(aad);
        check(Arrays.equals(c.doFinal(ct), DATA), "GCM round trip");
        ct[3] ^= 1;
        c.init(Cipher.DECRYPT_MODE, k, new GCMParameterSpec(128, iv));
        c.updateAAD(aad);
        try {
            c.doFinal(ct);
            throw new AssertionError("tampered GCM ciphertext decrypted");
        } catch (AEADBadTagException expected) {
            System.out.println("AES/GCM/NoPadding: round trip ok, tampered ciphertext refused");
        }
    }

    static void keyPairGenerator() throws Exception {
        KeyPairGenerator rsa = KeyPairGenerator.getInstance("RSA", p);
        rsa.initialize(2048);
        KeyPair kp = rsa.generateKeyPair();
        Signature s = Signature.getInstance("SHA256withRSA", p);
        s.initSign(kp.getPrivate());
        s.update(DATA);
        byte[] sig = s.sign();
        Signature v = Signature.getInstance("SHA256withRSA", "SunRsaSign");
        v.initVerify(kp.getPublic());
        v.update(DATA);
        check(v.verify(sig), "generated RSA key pair signs");
        KeyPairGenerator ec = KeyPairGenerator.getInstance("EC", p);
        ec.initialize(new ECGenParameterSpec("secp256r1"));
        kp = ec.generateKeyPair();
        s = Signature.getInstance("SHA256withECDSA", p);
        s.initSign(kp.getPrivate());
        s.update(DATA);
        sig = s.sign();
        v = Signature.getInstance("SHA256withECDSA", "SunEC");
        v.initVerify(kp.getPublic());
        v.update(DATA);
        check(v.verify(sig), "generated EC key pair signs");
        System.out.println("KeyPairGenerator RSA-2048 and EC secp256r1 through SunPKCS11: keys sign, JDK verifies");
    }

    // A key generated through the provider, used, then stored on the token through the
    // KeyStore and found again after reloading it.
    static void keyGenerator() throws Exception {
        KeyGenerator g = KeyGenerator.getInstance("AES", p);
        g.init(256);
        SecretKey k = g.generateKey();
        Cipher c = Cipher.getInstance("AES/CBC/PKCS5Padding", p);
        byte[] iv = new byte[16];
        c.init(Cipher.ENCRYPT_MODE, k, new IvParameterSpec(iv));
        byte[] ct = c.doFinal(DATA);
        ks.setEntry("javagen", new KeyStore.SecretKeyEntry(k), null);
        KeyStore again = KeyStore.getInstance("PKCS11", p);
        again.load(null, pin);
        check(again.containsAlias("javagen"), "stored key listed after reload");
        SecretKey stored = (SecretKey) again.getKey("javagen", pin);
        c.init(Cipher.DECRYPT_MODE, stored, new IvParameterSpec(iv));
        check(Arrays.equals(c.doFinal(ct), DATA), "stored key decrypts");
        System.out.println("KeyGenerator AES-256 through SunPKCS11: used, stored on the token as 'javagen', reloaded");
    }

    static void secureRandom() throws Exception {
        SecureRandom r = SecureRandom.getInstance("PKCS11", p);
        byte[] a = new byte[64], b = new byte[64];
        r.nextBytes(a);
        r.nextBytes(b);
        check(!Arrays.equals(a, b), "two draws differ");
        check(!Arrays.equals(a, new byte[64]), "not all zero");
        System.out.println("SecureRandom PKCS11 from " + r.getProvider().getName() + ": 2 x 64 bytes, distinct");
    }
}
