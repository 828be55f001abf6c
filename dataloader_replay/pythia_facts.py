"""EleutherAI's published facts about Pythia's training data, as data (each with its source).

What `open_source` checks a sharded source against: at one of the pinned revisions below a
mismatch is an error (one line); elsewhere (a mirror, another revision, another dataset of the
same layout) it is a warning only. `PUBLISHED_SHA256` is the table `pythia-suite verify`
checks a folder of shards against.
"""

from __future__ import annotations

from dataclasses import dataclass

# Row geometry of the preshuffled data: 1024 rows of 2049 uint16 tokens per step, 143,000 steps.
# Source: EleutherAI/pythia README ("Reproducing Training": batches of 1024 x 2049 tokens,
# 143000 steps) and the dataset cards of the two repositories below.
ROW_TOKENS = 2049
BATCH_ROWS = 1024
TOKEN_DTYPE = "uint16"
ROWS = 146_432_000  # 143,000 steps x 1,024 rows
# Shards: `document-00000-of-00020.bin` ... `document-00020-of-00020.bin` (21 files); each
# 30,000,000,000 bytes but the last; `document.idx` 1,757,184,042 bytes.
# Source: the file listings of the two dataset repositories on huggingface.co at the
# revisions below (pythia issue text, issue 16 of this suite).
SHARD_BYTES = 30_000_000_000
IDX_BYTES = 1_757_184_042
STEM = "document"


@dataclass(frozen=True, kw_only=True)
class PublishedDataset:
    """One of EleutherAI's preshuffled datasets at the revision its facts were read from."""

    repo_id: str
    revision: str  # the commit the facts below hold at
    rows: int = ROWS
    row_tokens: int = ROW_TOKENS
    dtype: str = TOKEN_DTYPE
    shard_bytes: int = SHARD_BYTES
    idx_bytes: int = IDX_BYTES
    stem: str = STEM

    @property
    def bin_bytes(self) -> int:
        return self.rows * self.row_tokens * 2  # 600,078,336,000

    @property
    def num_shards(self) -> int:
        return -(-self.bin_bytes // self.shard_bytes)  # 21

    def shard_sizes(self) -> list[int]:
        """Byte size of each shard: `shard_bytes`, the last one the remainder."""
        full, last = divmod(self.bin_bytes, self.shard_bytes)
        return [self.shard_bytes] * full + ([last] if last else [])


# Source: huggingface.co/datasets/EleutherAI/pile-deduped-pythia-preshuffled and
# huggingface.co/datasets/EleutherAI/pile-standard-pythia-preshuffled, commits as pinned in
# issue 16 (the revisions the published sizes were read at).
DATASETS: tuple[PublishedDataset, ...] = (
    PublishedDataset(
        repo_id="EleutherAI/pile-deduped-pythia-preshuffled",
        revision="4647773ea142ab1ff5694602fa104bbf49088408",
    ),
    PublishedDataset(
        repo_id="EleutherAI/pile-standard-pythia-preshuffled",
        revision="bac79b6820adb34e451f9a02cc1dc7cd920febf0",
    ),
)


def published(repo_id: str | None) -> PublishedDataset | None:
    """The published facts for a dataset id (case-insensitive), None for any other."""
    if repo_id is None:
        return None
    return next((d for d in DATASETS if d.repo_id.lower() == repo_id.lower()), None)


# The sha256 EleutherAI publishes for shards. Source: github.com/EleutherAI/pythia,
# file utils/shard_hashes.txt at commit f84c956a817b3c957fed6a8e82a657552b64b502, verbatim.
# It covers the 83 shards and the idx of the *unshuffled* tokenized deduplicated Pile
# (`pile_0.87_deduped_text_document`, dataset EleutherAI/pythia_deduped_pile_idxmaps), which
# `utils/unshard_memmap.py` merges. EleutherAI publishes no such table for the preshuffled
# `document-000KK-of-00020.bin` shards; for those the Hugging Face LFS sha256 (the blob names
# of an HF cache snapshot) is the reference `verify` uses.
_SHARD_HASHES_TXT = """\
pile_0.87_deduped_text_document-00000-of-00082.bin 44fb8e4898a07bacb71aba969afc4ffbe382813c09420122d57451cebe1d56a2
pile_0.87_deduped_text_document-00001-of-00082.bin 79c5439f4025a70abc40deeb9fb6044d8ae9c059e18fbb10cc094683f9959f8e
pile_0.87_deduped_text_document-00002-of-00082.bin 9e2c9f3c61a7a8d7cba17a5d8dfdb153808656662d01c40465cfa9a6a2b577a0
pile_0.87_deduped_text_document-00003-of-00082.bin 8bbda28e8ca06157b2b32baf41e435da4eeca9cd115b7dae48436395e129db4e
pile_0.87_deduped_text_document-00004-of-00082.bin f4873e1e4486fc5bbec3bdc42a5618de264b6a3ab18e3b7ef863b92684992cc0
pile_0.87_deduped_text_document-00005-of-00082.bin 22d5162f219685e57e1a0c3275f39b11cb8ec4198eb382d0b04da13633706aea
pile_0.87_deduped_text_document-00006-of-00082.bin 9cde81b969cb058c7a30f9ddcc60a55a0e4e8af1c5fa5b23b5373b1d435a8b0d
pile_0.87_deduped_text_document-00007-of-00082.bin 5dcf0f289b096168ea2747dbd04bc3aa90f000cbf4d7d4173be81cdb69f580b4
pile_0.87_deduped_text_document-00008-of-00082.bin 4fd2649977a40f0ac366ccf3fce78e4fbafcec43c885b213317ecbb1b3c617bc
pile_0.87_deduped_text_document-00009-of-00082.bin 323afe30eb70163cf1102e5f0612ac222519a634131a7757e5071c7c2d55034b
pile_0.87_deduped_text_document-00010-of-00082.bin 52854db7bbb316e2e8968aa54f95b99858510aa720a1c01a6da05f652f17c39c
pile_0.87_deduped_text_document-00011-of-00082.bin 654bc1c57934a6591916ea2c2eb58fa259cb2deb8721880271375e429d60191d
pile_0.87_deduped_text_document-00012-of-00082.bin 3234688f061e6232312665ab43bd4e42cba6619f2c40f3b38e8971d1c4607485
pile_0.87_deduped_text_document-00013-of-00082.bin 3ad20ab4cebda2ac3a325be7692f09e4af7c116a9e8f39780ce5c7926bcf6f49
pile_0.87_deduped_text_document-00014-of-00082.bin 52cc53dd16ae6a2f69c50b7f950c9e3213666bf09f5263bbda3d761ba5689240
pile_0.87_deduped_text_document-00015-of-00082.bin 7cc9002d1e8f1dd059a83e0d6037a7464aeb476a45aec660d2a41a29ab608eb8
pile_0.87_deduped_text_document-00016-of-00082.bin e5c50f1e1f0d902e810121ade4eea5849ac95e5672e073b0cfdbe9dc85e8bcf4
pile_0.87_deduped_text_document-00017-of-00082.bin 8fe6e13b935d8312627689bb7896e820ee2a870548b3b3785070f2cab966b516
pile_0.87_deduped_text_document-00018-of-00082.bin 3523bea0910a171cabd3156967b23483f678b73cfb0ddcb33ff6ee5178d7308f
pile_0.87_deduped_text_document-00019-of-00082.bin 6582da2636835ad4af659737f2640d220a94a74b77b509f6d9abed9040443085
pile_0.87_deduped_text_document-00020-of-00082.bin 243cf782b5025519ed10ab5569f21721a1e861179516a33225388de5875e1f7d
pile_0.87_deduped_text_document-00021-of-00082.bin d46f3fa4bc935963ca59328dd86172aeb8a4e5f0fcedcbafc25be97b56a6e24c
pile_0.87_deduped_text_document-00022-of-00082.bin ec867d580dea67f2ae03325cb6e0368aa7d33d3f3c4b4bbd9ba15d13d48a6664
pile_0.87_deduped_text_document-00023-of-00082.bin 3fc258e78d9781ae2aacba44952d9e4bad47bcbf6a399e9e2d60d1fa1084d090
pile_0.87_deduped_text_document-00024-of-00082.bin b2587f552d2432465e8317f3394ec4d7c30ae855e9e8a04e23c68a4e80589df2
pile_0.87_deduped_text_document-00025-of-00082.bin eaaf2f940bd65f7290ebdd6935be3ec1e0635483a8f95aaf9105eac2ac6b7b8a
pile_0.87_deduped_text_document-00026-of-00082.bin f8e6ff8d4918c218b51da3e26307f088e512554250dce261fd314df975b31c22
pile_0.87_deduped_text_document-00027-of-00082.bin 30373d15d0648d589500c6b6ca838e5974c088f5638360aa7ee5ff76bd97ef96
pile_0.87_deduped_text_document-00028-of-00082.bin e198f16cd9cb514a8d8696efcfe20846aec5d5a592fe70cac1aa94d688a25a5c
pile_0.87_deduped_text_document-00029-of-00082.bin 6f4ec0d7e266b99d909c86b33b72b8769e3fbac73ad88e53093633feeddaf589
pile_0.87_deduped_text_document-00030-of-00082.bin d6f1f7cc5d6df983bfb3a4c13833a0c78a2e9c938ebcb3a0806f970df678bfe7
pile_0.87_deduped_text_document-00031-of-00082.bin c0fa39d8f8c69c0916b4e9dc8f615becb5daac606bf74019aa5e3e73c86bbbfc
pile_0.87_deduped_text_document-00032-of-00082.bin 15d4092259331bc256134f237894478a5eb4e3af6954436fd60a3ca41bebf45d
pile_0.87_deduped_text_document-00033-of-00082.bin ff89fd3cd7fc8417ae69eead883de77fad418619dcbdbd2411165b35b1bd2b69
pile_0.87_deduped_text_document-00034-of-00082.bin 5a08528f866e60e1bbfca6af0bc5cb469d92fca7d5bee3432a77fcd97a8c36df
pile_0.87_deduped_text_document-00035-of-00082.bin 060649bf7fab8577485da9e86350516c4d01c45a26870e038fd231ca01e8e8d4
pile_0.87_deduped_text_document-00036-of-00082.bin 6cfd64f0b0d167df36ac26a34e399a5298c9c2bafb55e5d92c3d0d1336a4bd68
pile_0.87_deduped_text_document-00037-of-00082.bin 88a6d30a5c15168bae4299a4719777789753ed63127f1a61fedc534a0865973c
pile_0.87_deduped_text_document-00038-of-00082.bin 6c29b6dd9e54bf20ede80e5b067bcce656ea92e406f707d8ce11042d0d198d45
pile_0.87_deduped_text_document-00039-of-00082.bin ab69d9dfaf60783d2058c58a4aee055d3e8de664c76de045d4c11d97e27f89ce
pile_0.87_deduped_text_document-00040-of-00082.bin 63847abec693de3e3725b2575ae4c5febdfb0b83e963f5f3123fe5cbc3b2e400
pile_0.87_deduped_text_document-00041-of-00082.bin a694fc0ac07b53bc833bae06545fe5e3dc197a277b42e427a063bec27694fc17
pile_0.87_deduped_text_document-00042-of-00082.bin c4dd780cf581138ca9285e0aae318e7c720c423787e205ba27f7a33adbdbbf5d
pile_0.87_deduped_text_document-00043-of-00082.bin 2434525d56a7064bf88218253289fb6657762774300a47fd0989836d34807837
pile_0.87_deduped_text_document-00044-of-00082.bin 08a4852bac0e23e259de1d0d781cc5e4d83d37575b02949eda1feb2ebab136e5
pile_0.87_deduped_text_document-00045-of-00082.bin 001f3e6f176ab5f4d002ee6d595bd3654fbca6a213adb747705c54213f2d6ba0
pile_0.87_deduped_text_document-00046-of-00082.bin f18bc3af06130b3864f3a8d204bfee99c3bc85664088aee0fcf1a388254b9c5a
pile_0.87_deduped_text_document-00047-of-00082.bin 3ec92965092e57a63a2327ebf4f2bdb3cac2d04d5401766f1525137ae9de01ec
pile_0.87_deduped_text_document-00048-of-00082.bin 8c6a375e376504c07717c79b0e799627b33b1c36b16ba459f78c2ac6f040b869
pile_0.87_deduped_text_document-00049-of-00082.bin fee711b5ebebc4940c5be05c26d1eaaebd0251dcfc7810122de355189535eb72
pile_0.87_deduped_text_document-00050-of-00082.bin 9bac02da121a17bd8318eb11068450038e42905b8dc3cd867be1134e9fbf188f
pile_0.87_deduped_text_document-00051-of-00082.bin 381c9f96358536dcee9c3bba2951cc484582e0e3000641480cd0ca8067b6141a
pile_0.87_deduped_text_document-00052-of-00082.bin bec9671c23a0dddb61a8488391a294f90db3b770683c517982b3ed1c1cd1a8c5
pile_0.87_deduped_text_document-00053-of-00082.bin b3af75136aec9415a23c64c9781992b846844e6325d881ddaa77a981006b1d87
pile_0.87_deduped_text_document-00054-of-00082.bin 1b6bf23af61f4ac90e3b7e485b613055fb69fcc22794cb413365bd101e0bba4f
pile_0.87_deduped_text_document-00055-of-00082.bin d22db4eff42f2f22f622bdc2dc02aaa6bd70eb177912119c5fea1c345710d58d
pile_0.87_deduped_text_document-00056-of-00082.bin 2cdc2388cf36d3c8d2af0d7b131bc981932afc619b9b2651d7e8bc70775df227
pile_0.87_deduped_text_document-00057-of-00082.bin 5ddffbfe595539fed0c643bc9c504837bd906ef2e721b3bee87732680331ba1f
pile_0.87_deduped_text_document-00058-of-00082.bin 68ed1a65ddd6915a4ab2241068717d6f12717535b63348a3edbf2b002600a347
pile_0.87_deduped_text_document-00059-of-00082.bin b8b6dc1926cb392f2bda5471e0467c44e8e076615d9130b943f0b8b61c007ac0
pile_0.87_deduped_text_document-00060-of-00082.bin bd0596a901df424cf60fd03c644ce569cef07dc152bddd40d1c2984c34a703f8
pile_0.87_deduped_text_document-00061-of-00082.bin 1c348527066c820e302820f1695369e98cddcc427749339f632f2425406a7ef0
pile_0.87_deduped_text_document-00062-of-00082.bin 363316d3f6fd916ec0ea668b9b469f9d8f8a4682f1f9a6e6cad3bfa50c851606
pile_0.87_deduped_text_document-00063-of-00082.bin 2a4816f88a231cae0c866158386a4fc646ec39bdecb36564807589178a570295
pile_0.87_deduped_text_document-00064-of-00082.bin 9bdfb7ea57a992351726428d9009e8d934ff0c1bc10bbfa33ed9aba493817d6a
pile_0.87_deduped_text_document-00065-of-00082.bin 6cf1e5bd57a27041d123afaa0163b137e385975cde0b782e9e9627a718d1a32d
pile_0.87_deduped_text_document-00066-of-00082.bin 8fbf4532abd1e5520a82056745674a8b22b36aaf1618e843ed3870f301ce59c9
pile_0.87_deduped_text_document-00067-of-00082.bin 82120bc258795f015ea5c9d2d321da924e109b00231214a2543662428dd95b28
pile_0.87_deduped_text_document-00068-of-00082.bin e7bcdab7645cd704c7f760917a9618175258f7221787ccb8dafe7e2c3c624b9a
pile_0.87_deduped_text_document-00069-of-00082.bin d69fc3e544129b2172a73e4d7c7a13e8a87df9b77ed24949fafc00b7889b850d
pile_0.87_deduped_text_document-00070-of-00082.bin a87261eeac15a88a4690fe4642e5a79bef5137b38c983ad79eee5aa881d8d9f7
pile_0.87_deduped_text_document-00071-of-00082.bin 4745d205309071d72b98e8cf4022cfaf10632e2e5c3c7e3ef0469812632e85c6
pile_0.87_deduped_text_document-00072-of-00082.bin c1bd13864e3ece6548ef78acb5c60ca22ab5d7dad100620a9e68a00771b5fbab
pile_0.87_deduped_text_document-00073-of-00082.bin c5bab2d3d980b54b828d1d82c10aa8644134dbef44ad5f417a914b4cc554739a
pile_0.87_deduped_text_document-00074-of-00082.bin d798512e748ddeb725eaa6251f0ca61577ff720020ccf1b83c60d160f5c25cfa
pile_0.87_deduped_text_document-00075-of-00082.bin 13f4eeac35952ca993d20637399c8683f65778bee2342c6db817254ce8bd474a
pile_0.87_deduped_text_document-00076-of-00082.bin 55027686fefc585ca5782801a1e97740ae4bdf541f1ae063da23b674005646f4
pile_0.87_deduped_text_document-00077-of-00082.bin fe00525f75eb16a0335c84a418828de93a0d2cb15c71342a3c06c1b135182656
pile_0.87_deduped_text_document-00078-of-00082.bin 4051f364ab04b6afef7536de4008c9e2f104746e34b92a5cc84288f60ada93f5
pile_0.87_deduped_text_document-00079-of-00082.bin 4251b571748d0bc4a0d714c8bf4406d62f83a344ed4c3125fc4744aa32350439
pile_0.87_deduped_text_document-00080-of-00082.bin 087476c7ae09845a91a0e91b5e01041b0e71ce71f3fc916c7bde39059fdeb6a0
pile_0.87_deduped_text_document-00081-of-00082.bin 8ea41eb2f2088bb1526e6bf8aab0072b5ac5f9f8947f520a8c7683c58c1a824e
pile_0.87_deduped_text_document-00082-of-00082.bin be207095385d4ad70c49492f0f4891d909eaf58ac3289be41cf244192f4828d5
pile_0.87_deduped_text_document.idx a659c5a57fa772fb6d3582c6e0b3a55c0c43b16ee8ea72ac6a70cebcdd35d669
"""


def _parse(text: str) -> dict[str, str]:
    table: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip():
            name, digest = line.split()
            table[name] = digest
    return table


PUBLISHED_SHA256: dict[str, str] = _parse(_SHARD_HASHES_TXT)
